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

    /// <summary>
    /// OpenBLAS, threaded with pthreads. Without it <c>--no-install-recommends</c> leaves numpy, scipy, R and torch on
    /// netlib's reference <c>libblas.so.3</c>, 4-17x slower for a matrix product; OpenBLAS registers itself as the
    /// higher-priority <c>libblas.so.3</c> alternative.
    /// </summary>
    internal const string OpenBlas = "libopenblas0-pthread";

    /// <summary>numpy's BLAS as loaded at run time (threadpoolctl reads the loaded library, not numpy's build config).</summary>
    private const string NumpyOpenBlasCheck =
        "python3 -c \"import numpy, threadpoolctl; i = threadpoolctl.threadpool_info(); "
        + "b = [x for x in i if x['user_api'] == 'blas']; "
        + "assert any(x['internal_api'] == 'openblas' for x in b), 'numpy BLAS is not OpenBLAS: %r' % b; "
        + "print('numpy BLAS', ', '.join('%s %s %s threads=%s' % (x['internal_api'], x['version'], x['filepath'], x['num_threads']) for x in b))\"";

    /// <summary>
    /// A 1000x1000 product, best of 3: about 0.05-0.25 s with OpenBLAS on one to two cores and 0.7-1.1 s with the
    /// reference BLAS, so 0.5 s tells them apart with room for a busy machine.
    /// </summary>
    private const string NumpyMatmulCheck =
        "python3 -c \"import time, numpy as np; a = np.random.default_rng(0).random((1000, 1000)); a @ a; "
        + "t = min((lambda s: (a @ a, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(3)); "
        + "assert t < 0.5, '1000x1000 matmul took %.2f s (reference BLAS?)' % t; print('1000x1000 matmul %.3f s' % t)\"";

    /// <summary>R's BLAS as loaded (<c>extSoftVersion()</c> names the library file behind libblas.so.3).</summary>
    private const string ROpenBlasCheck =
        "Rscript -e 'b <- extSoftVersion()[[\"BLAS\"]]; cat(\"R BLAS\", b, \"\\n\"); "
        + "if (!grepl(\"openblas\", b)) stop(\"R BLAS is not OpenBLAS: \", b)'";

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
            // Node.js comes with Debian's jupyterlab; the image's dpkg filter keeps what it needs to start.
            Commands = ["node -e \"console.log('node', process.version, 6 * 7)\""],
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
                "python3-seaborn", "python3-statsmodels", "python3-sympy", "python3-threadpoolctl", OpenBlas,
            ],
            PythonImports = ["numpy", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "statsmodels", "sympy", "threadpoolctl"],
            Commands = [NumpyOpenBlasCheck, NumpyMatmulCheck],
            Requires = ["python"],
        },
        new Toolset
        {
            Name = "widgets",
            Description = "Jupyter widgets (ipywidgets) and tqdm progress bars",
            Packages = ["python3-ipywidgets", "python3-widgetsnbextension", "python3-tqdm"],
            PythonImports = ["ipywidgets", "widgetsnbextension", "tqdm"],
            Requires = ["jupyterlab"],
        },
        new Toolset
        {
            Name = "pydata",
            Description = "The rest of the scipy-notebook stack: dask, numba, numexpr, bottleneck, Cython, scikit-image, altair, plotly...",
            Packages =
            [
                "python3-dask", "python3-numba", "python3-numexpr", "python3-bottleneck", "cython3", "python3-cloudpickle",
                "python3-dill", "python3-skimage", "python3-altair", "python3-plotly", "python3-pooch", "python3-colorspacious",
            ],
            PythonImports =
            [
                "dask", "numba", "numexpr", "bottleneck", "Cython", "cloudpickle", "dill", "skimage", "altair", "plotly", "pooch",
                "colorspacious",
            ],
            Requires = ["scipy"],
        },
        new Toolset
        {
            Name = "dataformats",
            Description = "HDF5 (h5py, PyTables), Excel (openpyxl, xlrd), SQLAlchemy, protobuf",
            Packages = ["python3-h5py", "python3-tables", "python3-openpyxl", "python3-xlrd", "python3-sqlalchemy", "python3-protobuf"],
            PythonImports = ["h5py", "tables", "openpyxl", "xlrd", "sqlalchemy", "google.protobuf"],
            Requires = ["scipy"],
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
            Description = "PyTorch, CPU build, with torchvision and torchaudio",
            Packages = ["python3-torch", "python3-torchvision", "python3-torchaudio"],
            PythonImports = ["torch", "torchvision", "torchaudio"],
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
            Description = "R with the recommended packages (survival, boot, cluster, rpart, nnet...), OpenBLAS and the IRkernel Jupyter kernel",
            Packages = ["r-base-core", "r-recommended", "r-cran-irkernel", OpenBlas],
            RLibraries = ["IRkernel", "survival", "boot", "cluster", "rpart", "nnet", "MASS", "Matrix"],
            Kernels = ["ir"],
            Commands = ["R --version", ROpenBlasCheck],
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
