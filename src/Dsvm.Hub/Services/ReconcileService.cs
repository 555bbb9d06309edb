using Dsvm.Core.Workspaces;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Services;

/// <summary>
/// Repairs drift at start-up and then periodically: states from the engine's labels, routes from the store.
/// The hub never stops workspaces when it stops, so a restart finds them running and routes to them again, and
/// finishes the starts that it had accepted.
/// </summary>
public sealed partial class ReconcileService(
    WorkspaceManager manager, IWorkspaceStore store, HubWorkspaces workspaces, RouteTable routes, HubOptions options, TimeProvider time,
    ILogger<ReconcileService> logger) : BackgroundService
{
    public async Task RunOnceAsync(CancellationToken ct)
    {
        var report = await manager.ReconcileAsync(ct);
        foreach (var r in report.Repaired)
        {
            LogRepaired(r);
        }

        foreach (var u in report.Unknown)
        {
            LogUnknown(u.Name, u.WorkspaceId);
        }

        foreach (var w in await store.ListAsync(null, ct))
        {
            routes.Update(w);
        }

        // Starts a previous hub accepted (202) and did not finish: this hub finishes them.
        await workspaces.ResumeAcceptedAsync(ct);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // Anything but the hub stopping, an engine client's timeout (a TaskCanceledException) included: before,
                // that one ended the loop and, with it, the hub.
                LogFailed(ex);
            }

            try
            {
                await Task.Delay(options.ReconcileInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "reconciled: {Change}")]
    private partial void LogRepaired(string change);

    [LoggerMessage(Level = LogLevel.Warning, Message = "container {Name} is labelled for workspace {Id}, which has no record (left alone)")]
    private partial void LogUnknown(string name, string id);

    [LoggerMessage(Level = LogLevel.Error, Message = "reconciliation failed")]
    private partial void LogFailed(Exception ex);
}
