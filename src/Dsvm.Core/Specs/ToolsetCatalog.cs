namespace Dsvm.Core.Specs;

/// <summary>
/// A named group of Debian packages with the checks that prove it works inside an image.
/// Toolsets are data: adding one means adding an entry to <see cref="ToolsetCatalog.Default"/>.
/// </summary>
public sealed record Toolset
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    public IReadOnlyList<string> Packages { get; init; } = [];

    /// <summary>Python modules imported (with their <c>__version__</c> reported) by the in-image checks.</summary>
    public IReadOnlyList<string> PythonImports { get; init; } = [];

    /// <summary>R packages loaded with <c>library()</c> by the in-image checks.</summary>
    public IReadOnlyList<string> RLibraries { get; init; } = [];

    /// <summary>Jupyter kernels this toolset installs.</summary>
    public IReadOnlyList<string> Kernels { get; init; } = [];

    /// <summary>Shell commands that must exit 0 inside the image.</summary>
    public IReadOnlyList<string> Commands { get; init; } = [];

    /// <summary>Toolsets that must be selected too.</summary>
    public IReadOnlyList<string> Requires { get; init; } = [];

    /// <summary>Toolsets that cannot be selected together with this one.</summary>
    public IReadOnlyList<string> Conflicts { get; init; } = [];

    /// <summary>True when the toolset carries GPU builds (needs <c>gpu: optional</c> or <c>required</c>).</summary>
    public bool Gpu { get; init; }
}

/// <summary>The toolsets an environment spec may name.</summary>
public sealed class ToolsetCatalog
{
    private readonly Dictionary<string, Toolset> _byName;

    public ToolsetCatalog(IEnumerable<Toolset> toolsets) =>
        _byName = toolsets.ToDictionary(t => t.Name, StringComparer.Ordinal);

    /// <summary>Always part of an image: the init process and TLS roots.</summary>
    public const string CoreToolset = "core";

    public IEnumerable<Toolset> All => _byName.Values.OrderBy(t => t.Name, StringComparer.Ordinal);

    public bool Contains(string name) => _byName.ContainsKey(name);

    public Toolset Get(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new NotFoundException($"unknown toolset '{name}'");

    /// <summary>The toolsets a spec really gets: <see cref="CoreToolset"/> first, then the spec's, in its order.</summary>
    public IReadOnlyList<Toolset> Resolve(EnvironmentSpec spec) =>
        new[] { CoreToolset }.Concat(spec.Toolsets).Distinct(StringComparer.Ordinal).Select(Get).ToList();

    private const string TorchCpuCheck =
        "python3 -c \"import torch; x = torch.ones(64, 64); y = x @ x; "
        + "assert float(y[0, 0]) == 64.0; print('torch', torch.__version__, 'cpu matmul ok')\"";

    public static ToolsetCatalog Default { get; } = new(
    [
        new Toolset
        {
            Name = CoreToolset,
            Description = "Init process (tini), TLS roots, bash",
            Packages = ["tini", "ca-certificates", "bash", "procps"],
            Commands = ["tini --version"],
        },
        new Toolset
        {
            Name = "python",
            Description = "Python 3 with pip and venv",
            Packages = ["python3", "python3-pip", "python3-venv"],
            Commands = ["python3 --version"],
        },
        new Toolset
        {
            Name = "jupyterlab",
            Description = "JupyterLab 4 with the IPython kernel and nbconvert",
            Packages = ["jupyterlab", "python3-ipykernel", "python3-nbconvert", "python3-nbclient"],
            PythonImports = ["jupyterlab", "jupyter_server", "ipykernel", "nbconvert"],
            Kernels = ["python3"],
            Requires = ["python"],
        },
        new Toolset
        {
            Name = "scipy",
            Description = "numpy, pandas, scipy, scikit-learn, matplotlib, seaborn, statsmodels, sympy",
            Packages =
            [
                "python3-numpy", "python3-pandas", "python3-scipy", "python3-sklearn", "python3-matplotlib",
                "python3-seaborn", "python3-statsmodels", "python3-sympy",
            ],
            PythonImports = ["numpy", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "statsmodels", "sympy"],
            Requires = ["python"],
        },
        new Toolset
        {
            Name = "xgboost",
            Description = "XGBoost gradient boosting",
            Packages = ["python3-xgboost"],
            PythonImports = ["xgboost"],
            Requires = ["python"],
        },
        new Toolset
        {
            Name = "pytorch",
            Description = "PyTorch, CPU build",
            Packages = ["python3-torch"],
            PythonImports = ["torch"],
            Commands = [TorchCpuCheck],
            Requires = ["python"],
            Conflicts = ["pytorch-cuda"],
        },
        new Toolset
        {
            Name = "pytorch-cuda",
            Description = "PyTorch, CUDA build with the NVIDIA user-space libraries; falls back to CPU without a GPU",
            Packages = ["python3-torch-cuda"],
            PythonImports = ["torch"],
            Commands =
            [
                TorchCpuCheck,
                "python3 -c \"import torch; d = 'cuda' if torch.cuda.is_available() else 'cpu'; "
                    + "x = torch.ones(64, 64, device=d); print('torch device', d, float((x @ x)[0, 0]))\"",
            ],
            Requires = ["python"],
            Conflicts = ["pytorch"],
            Gpu = true,
        },
        new Toolset
        {
            Name = "r",
            Description = "R with the IRkernel Jupyter kernel",
            Packages = ["r-base-core", "r-cran-irkernel"],
            RLibraries = ["IRkernel"],
            Kernels = ["ir"],
            Commands = ["R --version"],
        },
        new Toolset
        {
            Name = "tidyverse",
            Description = "The tidyverse R packages",
            Packages = ["r-cran-tidyverse"],
            RLibraries = ["tidyverse"],
            Requires = ["r"],
        },
        new Toolset
        {
            Name = "git",
            Description = "git",
            Packages = ["git"],
            Commands = ["git --version"],
        },
        new Toolset
        {
            Name = "sqlite",
            Description = "SQLite command-line shell",
            Packages = ["sqlite3"],
            Commands = ["sqlite3 --version"],
        },
        new Toolset
        {
            Name = "postgresql-client",
            Description = "PostgreSQL client (psql)",
            Packages = ["postgresql-client"],
            Commands = ["psql --version"],
        },
    ]);
}
