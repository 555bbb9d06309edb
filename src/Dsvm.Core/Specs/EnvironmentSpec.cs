namespace Dsvm.Core.Specs;

/// <summary>How an environment treats GPUs.</summary>
public enum GpuMode
{
    /// <summary>CPU only; GPU sizes are refused.</summary>
    None,

    /// <summary>Uses a GPU when the size has one and the host provides it; otherwise runs on CPU and says so.</summary>
    Optional,

    /// <summary>Needs a GPU; starting without one is a clear error before anything starts.</summary>
    Required,
}

/// <summary>Where the base root filesystem comes from.</summary>
public sealed record BaseSpec
{
    public string Distribution { get; init; } = "debian";
    public string Suite { get; init; } = "trixie";
    public IReadOnlyList<string> Components { get; init; } = ["main"];
    public string Mirror { get; init; } = DefaultMirror;

    public const string DefaultMirror = "http://deb.debian.org/debian";

    /// <summary>Stable key of the base rootfs cache, e.g. <c>debian-trixie-main.contrib</c>.</summary>
    public string CacheKey => $"{Distribution}-{Suite}-{string.Join('.', Components)}";
}

/// <summary>A file or folder of the environment directory copied into the image.</summary>
public sealed record FileSpec(string Source, string Target);

/// <summary>Checks declared by the spec, on top of those its toolsets bring.</summary>
public sealed record CheckSpec
{
    public IReadOnlyList<string> Python { get; init; } = [];
    public IReadOnlyList<string> R { get; init; } = [];
    public IReadOnlyList<string> Notebooks { get; init; } = [];
    public IReadOnlyList<string> Commands { get; init; } = [];
}

/// <summary>A validated <c>environment.yaml</c>.</summary>
public sealed record EnvironmentSpec
{
    public required string Name { get; init; }
    public string Description { get; init; } = "";
    public BaseSpec Base { get; init; } = new();
    public IReadOnlyList<string> Toolsets { get; init; } = [];
    public IReadOnlyList<string> Packages { get; init; } = [];

    /// <summary>Folder (relative to <see cref="Directory"/>) of sample notebooks, seeded into new homes.</summary>
    public string? Samples { get; init; }
    public IReadOnlyList<FileSpec> Files { get; init; } = [];
    public IReadOnlyDictionary<string, string> Env { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);
    public IReadOnlyList<string> Kernels { get; init; } = [];
    public GpuMode Gpu { get; init; } = GpuMode.None;
    public CheckSpec Checks { get; init; } = new();

    /// <summary>Python distributions from a package index (<c>pip:</c>), or null.</summary>
    public PipSpec? Pip { get; init; }

    /// <summary>Folder holding the spec; relative paths resolve against it.</summary>
    public string Directory { get; init; } = ".";

    /// <summary>Path of the spec file, for error messages.</summary>
    public string FilePath { get; init; } = "environment.yaml";

    /// <summary>Where each key path sits in the file, for errors found after loading (e.g. an unknown package).</summary>
    public IReadOnlyDictionary<string, (int Line, int Column)> Locations { get; init; } =
        new Dictionary<string, (int, int)>();

    /// <summary>The raw bytes of the spec file; their digest ties a lock to the spec it was made from.</summary>
    public string Digest { get; init; } = "";

    /// <summary>The toolsets' and the spec's apt packages together, toolsets first, without duplicates.</summary>
    public IReadOnlyList<string> ToolsetPackages(ToolsetCatalog catalog) =>
        Toolsets.SelectMany(t => catalog.Get(t).Packages).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Makes an error located at a key path of this spec.</summary>
    public SpecError ErrorAt(string path, string message)
    {
        var (line, column) = Locations.TryGetValue(path, out var l) ? l : (0, 0);
        return new SpecError(FilePath, line, column, path, message);
    }
}
