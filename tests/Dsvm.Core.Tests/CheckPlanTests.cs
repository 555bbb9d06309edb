using Dsvm.Testing;
using Dsvm.Core.Checks;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Tests;

public sealed class CheckPlanTests
{
    private static IReadOnlyList<CheckDefinition> Datascience() =>
        CheckPlan.For(SpecLoader.Load(Path.Combine(TestEnvironment.EnvironmentsDir, "datascience"), ToolsetCatalog.Default), ToolsetCatalog.Default);

    private static IEnumerable<string> Targets(IReadOnlyList<CheckDefinition> plan, CheckKind kind) =>
        plan.Where(c => c.Kind == kind).Select(c => c.Target);

    [Fact]
    public void Datascience_ImportsItsPythonModules()
    {
        var python = Targets(Datascience(), CheckKind.PythonImport).ToList();

        Assert.Contains("numpy", python);
        Assert.Contains("pandas", python);
        Assert.Contains("sklearn", python);
        Assert.Contains("xgboost", python);
        Assert.Contains("torch", python);
        Assert.Contains("jupyterlab", python);
    }

    [Fact]
    public void Datascience_LoadsItsRLibraries() =>
        Assert.Equal(["IRkernel", "survival", "boot", "cluster", "rpart", "nnet", "MASS", "Matrix", "tidyverse"],
            Targets(Datascience(), CheckKind.RLibrary));

    [Fact]
    public void Datascience_ImportsTheScipyNotebookStackDebianHas()
    {
        var python = Targets(Datascience(), CheckKind.PythonImport).ToList();

        foreach (var module in new[]
        {
            "torchvision", "torchaudio", "ipywidgets", "tqdm", "dask", "numba", "numexpr", "bottleneck", "Cython",
            "cloudpickle", "dill", "h5py", "tables", "openpyxl", "xlrd", "sqlalchemy", "google.protobuf", "skimage",
            "altair", "plotly", "pooch", "colorspacious", "threadpoolctl",
        })
        {
            Assert.Contains(module, python);
        }
    }

    [Fact]
    public void Datascience_ProvesNumpyAndRUseOpenBlasAndAFastMatmul()
    {
        var commands = Targets(Datascience(), CheckKind.Command).ToList();

        Assert.Contains(commands, c => c.Contains("threadpoolctl", StringComparison.Ordinal) && c.Contains("'openblas'", StringComparison.Ordinal));
        Assert.Contains(commands, c => c.Contains("extSoftVersion", StringComparison.Ordinal) && c.Contains("openblas", StringComparison.Ordinal));
        Assert.Contains(commands, c => c.Contains("1000, 1000", StringComparison.Ordinal) && c.Contains("t < 0.5", StringComparison.Ordinal));
    }

    [Fact]
    public void ScipyAndR_BringOpenBlas() =>
        Assert.All(new[] { "scipy", "r" }, t => Assert.Contains("libopenblas0-pthread", ToolsetCatalog.Default.Get(t).Packages));

    [Fact]
    public void Datascience_ChecksBothKernels() =>
        Assert.Equal(["python3", "ir"], Targets(Datascience(), CheckKind.Kernel));

    [Fact]
    public void Datascience_RunsItsThreeNotebooksFromTheImageSamplesFolder() =>
        Assert.Equal(
            [
                "/opt/dsvm/samples/01-python-ml.ipynb",
                "/opt/dsvm/samples/02-r-tidyverse.ipynb",
                "/opt/dsvm/samples/03-pytorch.ipynb",
            ],
            Targets(Datascience(), CheckKind.Notebook));

    [Fact]
    public void Datascience_StartsWithTheCoreToolsetCommand()
    {
        var first = Datascience()[0];

        Assert.Equal(CheckKind.Command, first.Kind);
        Assert.Equal("tini --version", first.Target);
        Assert.Equal("command:tini --version", first.Id);
    }

    [Fact]
    public void Datascience_HasNoDuplicateChecks()
    {
        var plan = Datascience();

        Assert.Equal(plan.Count, plan.Select(c => c.Id).Distinct().Count());
        Assert.Equal(plan.Count, plan.Select(c => (c.Kind, c.Target)).Distinct().Count());
    }

    [Fact]
    public void Ids_ArePrefixedByKind()
    {
        var plan = Datascience();

        Assert.Contains(plan, c => c.Id == "python:numpy" && c.Kind == CheckKind.PythonImport);
        Assert.Contains(plan, c => c.Id == "r:tidyverse" && c.Kind == CheckKind.RLibrary);
        Assert.Contains(plan, c => c.Id == "kernel:ir" && c.Kind == CheckKind.Kernel);
        Assert.Contains(plan, c => c.Id == "notebook:/opt/dsvm/samples/03-pytorch.ipynb" && c.Kind == CheckKind.Notebook);
    }

    [Fact]
    public void SpecChecks_RepeatingToolsetChecks_AreNotDuplicated()
    {
        var spec = SpecLoader.Parse("""
            name: demo
            toolsets: [python, scipy, git]
            checks:
              python: [numpy, yaml]
              commands: ["git --version", "echo extra"]
            """, "environment.yaml", Path.GetTempPath(), ToolsetCatalog.Default);

        var plan = CheckPlan.For(spec, ToolsetCatalog.Default);

        Assert.Single(plan, c => c.Target == "numpy");
        Assert.Single(plan, c => c.Target == "git --version");
        Assert.Contains(plan, c => c.Id == "python:yaml");
        Assert.Contains(plan, c => c.Id == "command:echo extra");
    }

    [Fact]
    public void NotebooksInNestedSampleFolders_KeepTheirSubfolder()
    {
        using var dir = new TempDir();
        dir.Write("notebooks/intro/a.ipynb", "{}");
        var spec = SpecLoader.Parse("""
            name: demo
            samples: ./notebooks
            checks:
              notebooks: [notebooks/intro/a.ipynb]
            """, "environment.yaml", dir.Path, ToolsetCatalog.Default);

        var plan = CheckPlan.For(spec, ToolsetCatalog.Default);

        Assert.Equal(["/opt/dsvm/samples/intro/a.ipynb"], Targets(plan, CheckKind.Notebook));
    }

    [Fact]
    public void SpecWithoutToolsets_StillGetsTheCoreCommand()
    {
        var spec = SpecLoader.Parse("name: demo\n", "environment.yaml", Path.GetTempPath(), ToolsetCatalog.Default);

        var check = Assert.Single(CheckPlan.For(spec, ToolsetCatalog.Default));

        Assert.Equal("tini --version", check.Target);
    }
}
