using Dsvm.Core.Workspaces;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Services;

/// <summary>Runs the idle culler in the hub: idle servers are stopped (homes kept), busy kernels never.</summary>
public sealed partial class CullerService(
    WorkspaceManager manager, Dsvm.Core.Workspaces.IWorkspaceStore store, UserActions actions, HubOptions options, TimeProvider time,
    ILogger<CullerService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var culler = new IdleCuller(manager, store, new UserActions.ActivityClient(new HttpJupyterActivityClient(), actions), time,
            new IdleCullerOptions { IdleTimeout = options.IdleTimeout, Interval = options.CullInterval }, OnPass);
        try
        {
            await culler.RunAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void OnPass(CullPass pass)
    {
        if (pass.Error is not null)
        {
            LogPassFailed(pass.Error);
        }

        // The stop itself was published by the manager, with its reason (routes and events follow it).
        foreach (var d in pass.Decisions.Where(d => d.Culled))
        {
            LogCulled(d.Owner, d.Name, d.Reason);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "culled {Owner}/{Name}: {Reason}")]
    private partial void LogCulled(string owner, string name, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "idle-culler pass failed")]
    private partial void LogPassFailed(Exception ex);
}
