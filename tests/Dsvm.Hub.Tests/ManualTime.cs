namespace Dsvm.Hub.Tests;

/// <summary>A clock the test can set or move forward; it runs on from there with real time (timers are real too).</summary>
internal sealed class ManualTime : TimeProvider
{
    private readonly Lock _gate = new();
    private TimeSpan _offset;

    public DateTimeOffset Now
    {
        get
        {
            lock (_gate)
            {
                return DateTimeOffset.UtcNow + _offset;
            }
        }

        set
        {
            lock (_gate)
            {
                _offset = value - DateTimeOffset.UtcNow;
            }
        }
    }

    public void Advance(TimeSpan by)
    {
        lock (_gate)
        {
            _offset += by;
        }
    }

    public override DateTimeOffset GetUtcNow() => Now;
}
