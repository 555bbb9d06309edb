using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>The real local stack (Docker backend, SQLite store) on the shared test home, for one owner.</summary>
public sealed class WorkspaceStack
{
    public const string Owner = "it";

    private static readonly HttpClient Http = HttpReadinessProbe.CreateClient();

    public WorkspaceStack(TimeSpan? startTimeout = null, SizeCatalog? sizes = null)
    {
        Paths = TestEnvironment.Paths;
        Store = new SqliteWorkspaceStore(Paths.Database);
        Backend = new DockerWorkspaceBackend(new DockerBackendOptions(), new NvidiaGpuDetector());
        Manager = new WorkspaceManager(Backend, Store, sizes ?? SizeCatalog.Load(null), new NvidiaGpuDetector(), new HttpReadinessProbe(Http), Paths,
            TimeProvider.System, new WorkspaceOptions { StartTimeout = startTimeout ?? TimeSpan.FromSeconds(90) });
    }

    public DsvmPaths Paths { get; }
    public SqliteWorkspaceStore Store { get; }
    public DockerWorkspaceBackend Backend { get; }
    public WorkspaceManager Manager { get; }
    public static HttpClient Client => Http;

    public static DockerCli Docker => BuiltEnvironment.Services.Docker;

    public async Task<Workspace> UpAsync(string name, string size = "small", GpuMode gpu = GpuMode.None, string? image = null)
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        return await Manager.UpAsync(new CreateWorkspaceRequest
        {
            Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = image ?? record.Image, GpuMode = gpu, Size = size,
        }, null, default);
    }

    /// <summary>Removes a test workspace and its home, whatever state it is in.</summary>
    public async Task CleanupAsync(string name)
    {
        try
        {
            await Manager.DeleteAsync(Owner, name, deleteHome: true, null, default);
        }
        catch (NotFoundException)
        {
        }

        await Docker.RunAsync(["rm", "-f", $"dsvm-{Owner}-{name}"], default);
        await Docker.RunAsync(["volume", "rm", "-f", $"dsvm-home-{Owner}-{name}"], default);
    }

    /// <summary>Runs a command in the workspace's container as its user and returns stdout.</summary>
    public static async Task<string> ExecAsync(Workspace w, params string[] command)
    {
        var r = await Docker.RunAsync(["exec", w.ContainerId!, .. command], default);
        Assert.True(r.Ok, $"exec failed: {r.Stderr}");
        return r.Stdout.Trim();
    }
}
