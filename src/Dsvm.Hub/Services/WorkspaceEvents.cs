using System.Threading.Channels;
using Dsvm.Core.Workspaces;

namespace Dsvm.Hub.Services;

/// <summary>A published change with its id (SSE <c>id:</c>): increasing within a hub process, and above every id of earlier processes.</summary>
public sealed record NumberedEvent(long Id, WorkspaceChange Event);

/// <summary>
/// The events stream's side of <see cref="WorkspaceNotifications"/>: every change the manager publishes is numbered,
/// fanned out to Server-Sent-Events subscribers, and the last <see cref="ReplayCapacity"/> are kept so that a client
/// reconnecting with <c>Last-Event-ID</c> gets what it missed.
/// </summary>
public sealed class WorkspaceEvents : IDisposable
{
    /// <summary>Events kept for replay (all users'; each subscriber is replayed only what its filter admits).</summary>
    public const int ReplayCapacity = 1024;

    private readonly Lock _gate = new();
    private readonly List<(Func<WorkspaceChange, bool> Filter, Channel<NumberedEvent> Channel)> _subscribers = [];
    private readonly Queue<NumberedEvent> _recent = new();
    private readonly IDisposable _subscription;
    private long _lastId;

    /// <summary>Ids start at the process's start time in microseconds: a restarted hub never reuses an earlier one's ids.</summary>
    public WorkspaceEvents(WorkspaceNotifications notifications, TimeProvider time)
    {
        _lastId = time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        _subscription = notifications.Subscribe(Add);
    }

    public void Dispose() => _subscription.Dispose();

    private void Add(WorkspaceChange e)
    {
        lock (_gate)
        {
            var numbered = new NumberedEvent(++_lastId, e);
            _recent.Enqueue(numbered);
            if (_recent.Count > ReplayCapacity)
            {
                _recent.Dequeue();
            }

            foreach (var (filter, channel) in _subscribers)
            {
                if (filter(e))
                {
                    channel.Writer.TryWrite(numbered);
                }
            }
        }
    }

    /// <summary>
    /// Subscribes until the returned handle is disposed; slow readers drop the oldest events. With
    /// <paramref name="lastEventId"/>, the kept events after it come first; when some after it are no longer kept (or it
    /// is from no process this buffer knows), <see cref="Subscription.Lost"/> is set instead.
    /// </summary>
    public Subscription Subscribe(Func<WorkspaceChange, bool> filter, long? lastEventId = null)
    {
        var channel = Channel.CreateBounded<NumberedEvent>(new BoundedChannelOptions(ReplayCapacity + 256) { FullMode = BoundedChannelFullMode.DropOldest });
        var lost = false;
        lock (_gate)
        {
            if (lastEventId is { } last && last != _lastId)
            {
                var oldest = _recent.Count > 0 ? _recent.Peek().Id : _lastId + 1;
                if (last < oldest - 1 || last > _lastId)
                {
                    lost = true;
                }
                else
                {
                    foreach (var e in _recent.Where(e => e.Id > last && filter(e.Event)))
                    {
                        channel.Writer.TryWrite(e);
                    }
                }
            }

            _subscribers.Add((filter, channel));
        }

        return new Subscription(this, channel, lost);
    }

    public sealed class Subscription(WorkspaceEvents owner, Channel<NumberedEvent> channel, bool lost) : IDisposable
    {
        public ChannelReader<NumberedEvent> Reader => channel.Reader;

        /// <summary>Events after the client's Last-Event-ID are gone: it must reload the state it shows.</summary>
        public bool Lost { get; } = lost;

        public void Dispose()
        {
            lock (owner._gate)
            {
                owner._subscribers.RemoveAll(s => s.Channel == channel);
            }

            channel.Writer.TryComplete();
        }
    }
}
