using Microsoft.Playwright;

namespace Dsvm.EndToEnd.Tests;

/// <summary>Debian's Chromium under Playwright, headless, as every browser test here runs it.</summary>
internal sealed class Chromium : IAsyncDisposable
{
    private readonly IPlaywright _playwright;

    private Chromium(IPlaywright playwright, IBrowser browser) => (_playwright, Browser) = (playwright, browser);

    public IBrowser Browser { get; }

    public static async Task<Chromium> LaunchAsync()
    {
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ["--no-sandbox"],
            });
            return new Chromium(playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>Logs in through the hub's login form and waits for the hub's page.</summary>
    public static async Task LogInAsync(IPage page, string hub, string name, string password)
    {
        await page.GotoAsync($"{hub}/hub/login");
        await page.FillAsync("input[name=name]", name);
        await page.FillAsync("input[name=password]", password);
        await page.ClickAsync("button[type=submit]");
        try
        {
            // Committed is enough: the tests wait for what they look at next (a full-run failure of 2026-12-07 did not
            // reach the "load" event of the hub's page within 30 s; where it stood was not recorded).
            await page.WaitForURLAsync($"{hub}/hub/", new PageWaitForURLOptions { WaitUntil = WaitUntilState.Commit });
        }
        catch (TimeoutException ex)
        {
            string text;
            try
            {
                text = await page.Locator("body").InnerTextAsync(new LocatorInnerTextOptions { Timeout = 5_000 });
            }
            catch (Exception inner) when (inner is PlaywrightException or TimeoutException)
            {
                text = $"(no body: {inner.Message})";
            }

            throw new TimeoutException($"logging in as {name} did not reach {hub}/hub/: the page is at {page.Url}, saying: {(text.Length > 600 ? text[..600] + "…" : text)}", ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.DisposeAsync();
        _playwright.Dispose();
    }
}
