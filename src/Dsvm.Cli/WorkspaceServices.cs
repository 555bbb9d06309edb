using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Images;

namespace Dsvm.Cli;

/// <summary>
/// Local composition: the configured backends (the local Docker engine by default; <c>backends.yaml</c> adds Swarm,
/// Kubernetes or qemu VMs), SQLite state under the data folder.
/// </summary>
public sealed class WorkspaceServices
{
    /// <summary>Owner of workspaces made by the local CLI (the hub uses its users' names).</summary>
    public const string LocalOwner = "local";

    public WorkspaceServices()
    {
        var paths = DsvmPaths.FromEnvironment();
        Store = new SqliteWorkspaceStore(paths.Database);
        Sizes = LoadSizes(paths);
        Gpus = new NvidiaGpuDetector();
        BackendTypes = BackendFactory.Registry(paths, Gpus, () => Images!); // set below, before any backend is made
        (BackendConfig, Backends) = BackendFactory.Load(paths, Sizes, BackendTypes);
        Images = BackendFactory.ImagesOn(paths, BackendConfig);
        var timeout = Environment.GetEnvironmentVariable("DSVM_START_TIMEOUT") is { Length: > 0 } t && int.TryParse(t, out var secs) ? secs : 120;
        Manager = new WorkspaceManager(Backends, Store, Sizes, Gpus, new HttpReadinessProbe(), paths, TimeProvider.System,
            // One workspace at a time here: poll its Jupyter at most 100 ms apart (the hub's 250 ms spares N booting at once).
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(timeout), MaxPollInterval = TimeSpan.FromMilliseconds(100) });
    }

    /// <summary>The sizes: defaults plus <c>DSVM_SIZES</c> or <c>sizes.yaml</c> in the data folder.</summary>
    public static SizeCatalog LoadSizes(DsvmPaths paths) =>
        SizeCatalog.Load(Environment.GetEnvironmentVariable("DSVM_SIZES") is { Length: > 0 } f ? f : Path.Combine(paths.Data, SizeCatalog.FileName));

    public ImageServices Images { get; }
    public SqliteWorkspaceStore Store { get; }
    public SizeCatalog Sizes { get; }
    public NvidiaGpuDetector Gpus { get; }
    public BackendRegistry BackendTypes { get; }
    public BackendConfig BackendConfig { get; }
    public WorkspaceBackends Backends { get; }

    /// <summary>The default backend (the local engine unless backends.yaml says otherwise).</summary>
    public IWorkspaceBackend Backend => Backends.Default;
    public WorkspaceManager Manager { get; }

    /// <summary>Commands that talk to the engine directly (exec, logs -f) need the capability on the workspace's backend.</summary>
    public void RequireCapability(Workspace w, Func<BackendCapabilities, bool> has, string command)
    {
        if (!has(BackendTypes.CapabilitiesOf(BackendConfig, w.Backend)))
        {
            var able = BackendTypes.Types.Where(t => has(BackendTypes.Find(t)!.Capabilities));
            throw new UsageException($"`dsvm {command}` works for workspaces on {string.Join(" or ", able)} backends; '{w.Name}' runs on backend '{w.Backend}'");
        }
    }

    /// <summary>The GPU mode an image was built with (its io.opendsvm.gpu label).</summary>
    public async Task<GpuMode> GpuModeOfAsync(string image, CancellationToken ct) =>
        await Images.Docker.ImageLabelAsync(image, "io.opendsvm.gpu", ct) switch
        {
            "optional" => GpuMode.Optional,
            "required" => GpuMode.Required,
            _ => GpuMode.None,
        };

    /// <summary>The browser URL: JupyterLab under the workspace's base URL, with the token for the local user.</summary>
    public static string? UrlOf(Workspace w, bool withToken) =>
        w.Endpoint is null ? null : $"{w.Endpoint.TrimEnd('/')}{w.BaseUrl}lab" + (withToken ? $"?token={w.Token}" : "");
}
