using Dsvm.Core.Locks;
using Dsvm.Core.Specs;
using Dsvm.Testing;

namespace Dsvm.Images.Tests;

/// <summary>A small environment folder on disk and a lock for it, built in code (no Docker, no apt).</summary>
internal sealed class DemoEnvironment : IDisposable
{
    public const string SpecText = """
        name: demo
        description: Demo "quoted" environment
        toolsets: [python, jupyterlab, git]
        packages: [fonts-dejavu-core]
        samples: samples
        env:
          GREETING: say "hi"
          MPLBACKEND: Agg
        kernels: [python3]
        checks:
          notebooks: [samples/hello.ipynb]
        """;

    private readonly TempDir _dir = new();

    public DemoEnvironment(string specText = SpecText, string notebook = "{\"cells\": []}")
    {
        _dir.Write(SpecLoader.FileName, specText);
        _dir.Write("samples/hello.ipynb", notebook);
    }

    public string Path => _dir.Path;

    public void Write(string relative, string content) => _dir.Write(relative, content);

    public EnvironmentSpec Spec() => SpecLoader.Load(Path, ToolsetCatalog.Default);

    public void Dispose() => _dir.Dispose();

    public static IReadOnlyList<LockedPackage> BasePackages { get; } =
        [new("apt", "3.0.4"), new("bash", "5.2.37-2"), new("bsdutils", "1:2.41.5-0+deb13u1")];

    public static IReadOnlyList<LockedPackage> ToolsetPackages { get; } =
    [
        new("bash", "5.2.37-2+b10"), new("git", "1:2.47.3-0+deb13u1"), new("git-man", "1:2.47.3-0+deb13u1"),
        new("jupyterlab", "4.2.5-1"), new("python3", "3.13.5-1"), new("tini", "0.19.0-1"),
    ];

    public static EnvironmentLock Lock(EnvironmentSpec spec, IReadOnlyList<LockedPackage>? extra = null) => new()
    {
        Environment = spec.Name,
        SpecDigest = spec.Digest,
        Base = new BaseLock
        {
            Distribution = spec.Base.Distribution,
            Suite = spec.Base.Suite,
            Components = spec.Base.Components,
            Mirror = spec.Base.Mirror,
            RootfsDigest = "sha256:0123456789abcdef" + new string('0', 48),
        },
        BasePackages = BasePackages,
        ToolsetPackages = ToolsetPackages,
        ExtraPackages = extra ?? [new("fonts-dejavu-core", "2.37-8")],
    };
}
