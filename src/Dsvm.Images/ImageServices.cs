using Dsvm.Core;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>The environment services wired together by hand (the CLI and the tests share this composition).</summary>
public sealed class ImageServices
{
    /// <param name="engine">The Docker engine images are built on and looked up in (default: <c>DOCKER_HOST</c> or the local socket).</param>
    /// <param name="engineTimeout">How long a call to it may go unanswered (default 30 s).</param>
    public ImageServices(DsvmPaths paths, DockerCli? docker = null, TimeProvider? time = null, Uri? engine = null, TimeSpan? engineTimeout = null)
    {
        Paths = paths.EnsureCreated();
        Docker = docker ?? new DockerCli(Environment.GetEnvironmentVariable("DSVM_DOCKER") is { Length: > 0 } d ? d : "docker", engine, engineTimeout);
        Bases = new BaseImageProvider(Docker, Paths);
        Resolver = new LockResolver(Docker, Bases, Catalog, PackageCache.DefaultDirectory(Paths));
        Records = new BuildRecordStore(Paths);
        Checks = new CheckRunner(Docker);
        Builder = new ImageBuilder(Docker, Bases, Resolver, Checks, Records, Catalog, Paths, time ?? TimeProvider.System);
        Inspector = new ImageInspector(Docker, Records);
    }

    public DsvmPaths Paths { get; }
    public ToolsetCatalog Catalog { get; } = ToolsetCatalog.Default;
    public DockerCli Docker { get; }
    public BaseImageProvider Bases { get; }
    public LockResolver Resolver { get; }
    public BuildRecordStore Records { get; }
    public CheckRunner Checks { get; }
    public ImageBuilder Builder { get; }
    public ImageInspector Inspector { get; }

    public EnvironmentSpec LoadSpec(string nameOrPath) => SpecLoader.Load(EnvironmentLocator.Resolve(nameOrPath), Catalog);
}
