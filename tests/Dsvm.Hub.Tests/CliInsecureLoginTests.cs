using Dsvm.Core;
using CliHubClient = Dsvm.Cli.HubClient;

namespace Dsvm.Hub.Tests;

/// <summary><c>dsvm login http://…</c> to another machine would send the password in clear text: refused unless --insecure.</summary>
public sealed class CliInsecureLoginTests
{
    [Theory]
    [InlineData("http://0.0.0.0:1")]
    [InlineData("http://hub.example.org")]
    [InlineData("http://192.0.2.1:8000")]
    public void Plain_http_to_another_host_is_refused_with_one_line(string url)
    {
        var ex = Assert.Throws<UsageException>(() => CliHubClient.RequireSecureTransport(url, insecure: false));
        Assert.Contains("--insecure", ex.Message, StringComparison.Ordinal);
        Assert.Contains("https://", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Theory]
    [InlineData("https://hub.example.org", false)]
    [InlineData("http://127.0.0.1:8000", false)]
    [InlineData("http://localhost:8000", false)]
    [InlineData("http://[::1]:8000", false)]
    [InlineData("http://hub.example.org", true)]
    public void Https_loopback_or_an_explicit_insecure_pass(string url, bool insecure) =>
        CliHubClient.RequireSecureTransport(url, insecure);

    [Fact]
    public async Task A_password_login_checks_before_it_connects()
    {
        // 0.0.0.0 is not loopback by name but would reach this machine: nothing leaves it even if the check were missing.
        var ex = await Assert.ThrowsAsync<UsageException>(() =>
            CliHubClient.LoginWithPasswordAsync("http://0.0.0.0:1", "alice", "password-of-alice", CancellationToken.None));
        Assert.Contains("--insecure", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<UsageException>(() => CliHubClient.LoginWithTokenAsync("http://0.0.0.0:1", "dsvm_x", CancellationToken.None));
    }
}
