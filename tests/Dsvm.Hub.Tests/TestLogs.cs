using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Tests;

/// <summary>Keeps every log line a hub writes at Warning or above ("Category: message"), for tests that expect a warning.</summary>
internal sealed class TestLogs : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(TestLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner.Lines.Enqueue($"{category}: {formatter(state, exception)}");
            }
        }
    }
}
