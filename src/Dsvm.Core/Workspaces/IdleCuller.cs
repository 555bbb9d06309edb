namespace Dsvm.Core.Workspaces;

/// <summary>Tunables of the idle culler.</summary>
public sealed record IdleCullerOptions
{
    /// <summary>A server whose own last activity is at least this old is stopped (its home is kept).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Between passes.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Whether a server with a busy kernel may be culled once its activity is old. Off by default and meant to stay
    /// off: a kernel running a long computation sends nothing while it works, so its activity looks old.
    /// </summary>
    public bool CullBusy { get; init; }

    /// <summary>Servers asked at the same time in one pass.</summary>
    public int Concurrency { get; init; } = 8;
}

/// <summary>What the culler decided for one running workspace, and why.</summary>
public sealed record CullDecision(string Owner, string Name, bool Culled, string Reason);

/// <summary>One pass of <see cref="IdleCuller.RunAsync"/>: its decisions, or the error that stopped it.</summary>
public sealed record CullPass(DateTimeOffset At, IReadOnlyList<CullDecision> Decisions, Exception? Error);

/// <summary>
/// Stops running workspaces whose Jupyter server has been idle for <see cref="IdleCullerOptions.IdleTimeout"/>.
/// Unlike JupyterHub's culler it only trusts the server's own report (<see cref="IJupyterActivityClient"/>): traffic
/// through a proxy (a browser tab left open, polling) is not activity, and a busy kernel (a long computation that
/// sends nothing) is never culled. A server that does not answer is left to reconciliation. Culling is
/// <see cref="WorkspaceManager.StopAsync"/>: the home stays and the workspace can be started again.
/// </summary>
public sealed class IdleCuller(
    WorkspaceManager manager,
    IWorkspaceStore store,
    IJupyterActivityClient activity,
    TimeProvider time,
    IdleCullerOptions options,
    Action<CullPass>? onPass = null)
{
    private readonly IdleCullerOptions _options = Validate(options);

    private static IdleCullerOptions Validate(IdleCullerOptions o)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(o.IdleTimeout, TimeSpan.Zero, "options.IdleTimeout");
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(o.Interval, TimeSpan.Zero, "options.Interval");
        return o;
    }

    /// <summary>Checks every running workspace once and stops the idle ones; one workspace's failure is its decision.</summary>
    public async Task<IReadOnlyList<CullDecision>> RunOnceAsync(CancellationToken ct)
    {
        var running = (await store.ListAsync(null, ct)).Where(w => w.State == WorkspaceState.Running).ToArray();
        var decisions = new CullDecision[running.Length];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, running.Length),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _options.Concurrency), CancellationToken = ct },
            async (i, token) => decisions[i] = await DecideAsync(running[i], token));
        return decisions;
    }

    /// <summary>Runs a pass every <see cref="IdleCullerOptions.Interval"/> until <paramref name="ct"/> is cancelled (then throws).</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        while (true)
        {
            CullPass pass;
            try
            {
                pass = new CullPass(time.GetUtcNow(), await RunOnceAsync(ct), null);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                pass = new CullPass(time.GetUtcNow(), [], ex);
            }

            try
            {
                onPass?.Invoke(pass);
            }
            catch (Exception) when (!ct.IsCancellationRequested)
            {
                // A failing observer must not stop the culler.
            }

            await Task.Delay(_options.Interval, time, ct);
        }
    }

    private async Task<CullDecision> DecideAsync(Workspace w, CancellationToken ct)
    {
        try
        {
            var report = await activity.GetAsync(w, ct);
            if (report is null)
            {
                return new CullDecision(w.Owner, w.Name, false, "no answer (left to reconciliation)");
            }

            var idle = time.GetUtcNow() - report.LastActivity;
            if (report.BusyKernels > 0 && !_options.CullBusy)
            {
                return new CullDecision(w.Owner, w.Name, false,
                    $"kernel busy ({report.BusyKernels} of {report.Kernels}; last activity {Age(idle)} ago)");
            }

            if (idle < _options.IdleTimeout)
            {
                return new CullDecision(w.Owner, w.Name, false, $"active {Age(idle)} ago");
            }

            var reason = $"idle for {Age(idle)}" + (report.BusyKernels > 0 ? $" ({report.BusyKernels} kernel(s) busy)" : "");
            await manager.StopAsync(w.Owner, w.Name, null, ct, reason);
            return new CullDecision(w.Owner, w.Name, true, reason);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            return new CullDecision(w.Owner, w.Name, false, $"error: {ex.Message}");
        }
    }

    /// <summary>A duration as people read it: <c>1h02m</c>, <c>3m</c>, <c>12s</c>.</summary>
    internal static string Age(TimeSpan d)
    {
        if (d < TimeSpan.Zero)
        {
            d = TimeSpan.Zero;
        }

        return d.TotalHours >= 1 ? $"{(long)d.TotalHours}h{d.Minutes:00}m"
            : d.TotalMinutes >= 1 ? $"{(long)d.TotalMinutes}m"
            : $"{(long)d.TotalSeconds}s";
    }
}
