using System.Threading.Channels;
using Dsvm.Core.Workspaces;

namespace Dsvm.Hub.Services;

/// <summary>A workspace's state change or start progress, as the events stream sends it.</summary>
public sealed record WorkspaceEvent(string Owner, string Name, WorkspaceState State, string Message, DateTimeOffset At);

/// <summary>In-process fan-out of workspace events to Server-Sent-Events subscribers.</summary>
public sealed class WorkspaceEvents
{
    private readonly Lock _gate = new();
    private readonly List<(Func<WorkspaceEvent, bool> Filter, Channel<WorkspaceEvent> Channel)> _subscribers = [];

    public void Publish(WorkspaceEvent e)
    {
        lock (_gate)
        {
            foreach (var (filter, channel) in _subscribers)
            {
                if (filter(e))
                {
                    channel.Writer.TryWrite(e);
                }
            }
        }
    }

    /// <summary>Subscribes until the returned handle is disposed; slow readers drop the oldest events.</summary>
    public Subscription Subscribe(Func<WorkspaceEvent, bool> filter)
    {
        var channel = Channel.CreateBounded<WorkspaceEvent>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_gate)
        {
            _subscribers.Add((filter, channel));
        }

        return new Subscription(this, channel);
    }

    public sealed class Subscription(WorkspaceEvents owner, Channel<WorkspaceEvent> channel) : IDisposable
    {
        public ChannelReader<WorkspaceEvent> Reader => channel.Reader;

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
