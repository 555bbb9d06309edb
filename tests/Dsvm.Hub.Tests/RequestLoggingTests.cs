using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Tests;

/// <summary>At the default level the hub writes no line per request; Hub:RequestLogging turns request logging on.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "the provider holds nothing to dispose")]
public sealed class RequestLoggingTests : HubTestBase
{
    private readonly CapturingLoggerProvider _log = new();

    private async Task<TestHub> HubAsync(bool requestLogging)
    {
        World.Logging = l => l.AddProvider(_log);
        return await World.StartHubAsync(HubWorld.DefaultOptions() with { RequestLogging = requestLogging });
    }

    private async Task RequestsAsync(TestHub hub)
    {
        var alice = hub.NewClient();
        await alice.LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
        _log.Entries.Clear();
        for (var i = 0; i < 10; i++)
        {
            await alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.OK);
            await alice.Http.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK);
            await alice.Http.GetAsync("hub/static/hub.css").Expect(HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task Proxied_and_api_requests_log_nothing_at_information_by_default()
    {
        Assert.False(new HubOptions().RequestLogging);
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        var hub = await HubAsync(requestLogging: false);
        await RequestsAsync(hub);
        var lines = _log.Entries.Where(e => e.Level >= LogLevel.Information).ToList();
        Assert.True(lines.Count == 0, "logged per request:\n" + string.Join('\n', lines.Take(20)));
    }

    [Fact]
    public async Task Request_logging_is_opt_in()
    {
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        var hub = await HubAsync(requestLogging: true);
        await RequestsAsync(hub);
        Assert.Contains(_log.Entries, e => e.Category.StartsWith("Microsoft.AspNetCore.Hosting", StringComparison.Ordinal) && e.Level == LogLevel.Information);
        Assert.Contains(_log.Entries, e => e.Category.StartsWith("Yarp", StringComparison.Ordinal) && e.Level == LogLevel.Information);
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((category, logLevel, formatter(state, exception)));
        }
    }
}
