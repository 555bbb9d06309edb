using Dsvm.Testing;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Tests;

public sealed class SpecLoaderTests
{
    private const string SpecFile = "envs/demo/environment.yaml";

    /// <summary>Resolution folder for specs that name no samples or files (never read).</summary>
    private static readonly string NoDirectory = Path.Combine(Path.GetTempPath(), "dsvm-tests-no-such-folder");

    private static EnvironmentSpec Parse(string yaml, string? directory = null) =>
        SpecLoader.Parse(yaml, SpecFile, directory ?? NoDirectory, ToolsetCatalog.Default);

    private static IReadOnlyList<SpecError> Errors(string yaml, string? directory = null) =>
        Assert.Throws<SpecValidationException>(() => Parse(yaml, directory)).Errors;

    private static SpecError SingleError(string yaml, string? directory = null) => Assert.Single(Errors(yaml, directory));

    // ---- curated specs ----

    [Theory]
    [InlineData("minimal")]
    [InlineData("datascience")]
    [InlineData("gpu")]
    public void CuratedSpec_Loads(string name)
    {
        var spec = SpecLoader.Load(Path.Combine(TestEnvironment.EnvironmentsDir, name), ToolsetCatalog.Default);

        Assert.Equal(name, spec.Name);
        Assert.Equal(Path.Combine(Path.Combine(TestEnvironment.EnvironmentsDir, name), SpecLoader.FileName), spec.FilePath);
        Assert.Equal("samples", spec.Samples);
        Assert.Matches("^sha256:[0-9a-f]{64}$", spec.Digest);
    }

    [Fact]
    public void CuratedDatascience_HasItsToolsetsKernelsAndEnv()
    {
        var spec = SpecLoader.Load(Path.Combine(TestEnvironment.EnvironmentsDir, "datascience"), ToolsetCatalog.Default);

        Assert.Contains("pytorch", spec.Toolsets);
        Assert.Equal(["python3", "ir"], spec.Kernels);
        Assert.DoesNotContain("OMP_NUM_THREADS", spec.Env.Keys); // threads follow the workspace size (dsvm-start)
        Assert.Equal("Agg", spec.Env["MPLBACKEND"]);
        Assert.Equal(GpuMode.None, spec.Gpu);
        Assert.Equal(["main", "contrib", "non-free"], spec.Base.Components);
    }

    [Fact]
    public void CuratedGpu_IsOptionalGpuWithCudaPyTorch()
    {
        var spec = SpecLoader.Load(Path.Combine(TestEnvironment.EnvironmentsDir, "gpu"), ToolsetCatalog.Default);

        Assert.Equal(GpuMode.Optional, spec.Gpu);
        Assert.Contains("pytorch-cuda", spec.Toolsets);
        Assert.DoesNotContain("pytorch", spec.Toolsets);
    }

    [Fact]
    public void Load_FolderWithoutSpec_IsNotFound()
    {
        using var dir = new TempDir();

        var ex = Assert.Throws<NotFoundException>(() => SpecLoader.Load(dir.Path, ToolsetCatalog.Default));

        Assert.Contains("no environment.yaml", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_MinimalText_AppliesDefaults()
    {
        var spec = Parse("name: demo\n");

        Assert.Equal("demo", spec.Name);
        Assert.Equal("trixie", spec.Base.Suite);
        Assert.Equal(["main"], spec.Base.Components);
        Assert.Equal(BaseSpec.DefaultMirror, spec.Base.Mirror);
        Assert.Equal(GpuMode.None, spec.Gpu);
        Assert.Empty(spec.Toolsets);
        Assert.Null(spec.Samples);
    }

    [Fact]
    public void Parse_SameText_GivesSameDigest_AndDifferentTextAnother()
    {
        var a = Parse("name: demo\n");
        var b = Parse("name: demo\n");
        var c = Parse("name: demo\ndescription: changed\n");

        Assert.Equal(a.Digest, b.Digest);
        Assert.NotEqual(a.Digest, c.Digest);
    }

    // ---- keys and types ----

    [Fact]
    public void UnknownTopLevelKey_IsLocatedWithDidYouMean()
    {
        var error = SingleError("""
            name: demo
            toolset: [python]
            """);

        Assert.Equal(SpecFile, error.File);
        Assert.Equal((2, 1), (error.Line, error.Column));
        Assert.Equal("toolset", error.Path);
        Assert.Contains("unknown key 'toolset'", error.Message, StringComparison.Ordinal);
        Assert.Contains("(did you mean 'toolsets'?)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownNestedKey_IsLocatedAtTheNestedKey()
    {
        var error = SingleError("""
            name: demo
            base:
              suit: trixie
            """);

        Assert.Equal((3, 3), (error.Line, error.Column));
        Assert.Equal("base.suit", error.Path);
        Assert.Contains("(did you mean 'suite'?)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownKey_FarFromAnyKnownKey_HasNoSuggestion()
    {
        var error = SingleError("""
            name: demo
            colour: blue
            """);

        Assert.Equal("colour", error.Path);
        Assert.DoesNotContain("did you mean", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToolsetsGivenAsString_IsAWrongTypeError()
    {
        var error = SingleError("""
            name: demo
            toolsets: python
            """);

        Assert.Equal("toolsets", error.Path);
        Assert.Equal((2, 11), (error.Line, error.Column));
        Assert.Equal("expected a list", error.Message);
    }

    [Fact]
    public void NameGivenAsList_IsAWrongTypeError()
    {
        var error = SingleError("name: [a, b]\n");

        Assert.Equal("name", error.Path);
        Assert.Equal((1, 7), (error.Line, error.Column));
        Assert.Equal("expected a single value, found a list", error.Message);
    }

    [Fact]
    public void MissingName_IsReported()
    {
        var error = SingleError("description: no name\n");

        Assert.Equal("name", error.Path);
        Assert.Contains("required key 'name' is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidEnvironmentName_IsReported()
    {
        var error = SingleError("name: Demo_Env\n");

        Assert.Equal("name", error.Path);
        Assert.Contains("'Demo_Env' is not a valid environment name", error.Message, StringComparison.Ordinal);
    }

    // ---- toolsets ----

    [Fact]
    public void UnknownToolset_IsLocatedAtItsItemWithDidYouMean()
    {
        var error = SingleError("""
            name: demo
            toolsets: [python, jupyterlb]
            """);

        Assert.Equal("toolsets[1]", error.Path);
        Assert.Equal((2, 20), (error.Line, error.Column));
        Assert.Contains("unknown toolset 'jupyterlb'", error.Message, StringComparison.Ordinal);
        Assert.Contains("(did you mean 'jupyterlab'?)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToolsetWithoutItsRequiredToolset_IsReported()
    {
        var error = SingleError("""
            name: demo
            toolsets:
              - jupyterlab
            """);

        Assert.Equal("toolsets[0]", error.Path);
        Assert.Equal((3, 5), (error.Line, error.Column));
        Assert.Contains("toolset 'jupyterlab' needs toolset 'python'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConflictingToolsets_AreReportedOnce()
    {
        var error = SingleError("""
            name: demo
            gpu: optional
            toolsets: [python, pytorch, pytorch-cuda]
            """);

        Assert.Equal("toolsets[1]", error.Path);
        Assert.Contains("toolset 'pytorch' cannot be combined with 'pytorch-cuda'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToolsetListedTwice_IsReportedAtTheSecondItem()
    {
        var error = SingleError("""
            name: demo
            toolsets: [python, git, python]
            """);

        Assert.Equal("toolsets[2]", error.Path);
        Assert.Contains("listed twice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuToolset_WithGpuNone_IsReported()
    {
        var error = SingleError("""
            name: demo
            gpu: none
            toolsets: [python, pytorch-cuda]
            """);

        Assert.Equal("toolsets[1]", error.Path);
        Assert.Contains("toolset 'pytorch-cuda' carries GPU builds", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuToolset_WithGpuOptional_Loads()
    {
        var spec = Parse("""
            name: demo
            gpu: optional
            toolsets: [python, pytorch-cuda]
            """);

        Assert.Equal(GpuMode.Optional, spec.Gpu);
    }

    [Fact]
    public void BadGpuMode_IsLocatedAtTheValue()
    {
        var error = SingleError("""
            name: demo
            gpu: maybe
            """);

        Assert.Equal("gpu", error.Path);
        Assert.Equal((2, 6), (error.Line, error.Column));
        Assert.Contains("'maybe' is not a GPU mode", error.Message, StringComparison.Ordinal);
    }

    // ---- packages and kernels ----

    [Fact]
    public void InvalidPackageName_IsLocatedAtItsItem()
    {
        var error = SingleError("""
            name: demo
            packages:
              - git
              - Not_A_Package
            """);

        Assert.Equal("packages[1]", error.Path);
        Assert.Equal((4, 5), (error.Line, error.Column));
        Assert.Contains("'Not_A_Package' is not a valid Debian package name", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicatePackage_IsReportedAtItsOwnIndex_AfterAnInvalidItem()
    {
        var errors = Errors("""
            name: demo
            packages:
              - {name: git}
              - git
              - git
            """);

        Assert.Equal(2, errors.Count);
        Assert.Equal("packages[0]", errors[0].Path);
        Assert.Equal("expected a single value, found a mapping", errors[0].Message);
        Assert.Equal("packages[2]", errors[1].Path);
        Assert.Equal((5, 5), (errors[1].Line, errors[1].Column));
        Assert.Contains("package 'git' is listed twice", errors[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TwoInvalidPackageItems_AreNotReportedAsDuplicates()
    {
        var errors = Errors("""
            name: demo
            packages:
              - {name: git}
              - [curl]
            """);

        Assert.Equal(["packages[0]", "packages[1]"], errors.Select(e => e.Path));
        Assert.DoesNotContain(errors, e => e.Message.Contains("listed twice", StringComparison.Ordinal));
    }

    [Fact]
    public void InvalidKernelItem_IsReportedOnlyOnce()
    {
        var error = SingleError("""
            name: demo
            toolsets: [python, jupyterlab]
            kernels: [python3, {name: ir}]
            """);

        Assert.Equal("kernels[1]", error.Path);
        Assert.Equal("expected a single value, found a mapping", error.Message);
    }

    [Fact]
    public void KernelNotProvidedByAnyToolset_NamesTheToolsetThatWould()
    {
        var error = SingleError("""
            name: demo
            toolsets: [python]
            kernels: [ir]
            """);

        Assert.Equal("kernels[0]", error.Path);
        Assert.Equal((3, 11), (error.Line, error.Column));
        Assert.Contains("no selected toolset provides kernel 'ir'; add toolset 'r'", error.Message, StringComparison.Ordinal);
    }

    // ---- samples, notebooks and files on disk ----

    [Fact]
    public void SamplesAndNotebooks_OnDisk_Load()
    {
        using var dir = new TempDir();
        dir.Write("samples/hello.ipynb", "{}");

        var spec = Parse("""
            name: demo
            samples: ./samples/
            checks:
              notebooks: [samples/hello.ipynb]
            """, dir.Path);

        Assert.Equal("samples", spec.Samples);
        Assert.Equal(["samples/hello.ipynb"], spec.Checks.Notebooks);
        Assert.Equal(dir.Path, spec.Directory);
    }

    [Fact]
    public void NotebookOutsideSamples_IsReported()
    {
        using var dir = new TempDir();
        dir.Write("samples/hello.ipynb", "{}");
        dir.Write("other/b.ipynb", "{}");

        var error = SingleError("""
            name: demo
            samples: samples
            checks:
              notebooks:
                - other/b.ipynb
            """, dir.Path);

        Assert.Equal("checks.notebooks[0]", error.Path);
        Assert.Equal((5, 7), (error.Line, error.Column));
        Assert.Contains("must lie in the samples folder", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotebookCheck_ThatIsNotANotebook_IsReported()
    {
        using var dir = new TempDir();
        dir.Write("samples/readme.md", "# hi");

        var error = SingleError("""
            name: demo
            samples: samples
            checks:
              notebooks: [samples/readme.md]
            """, dir.Path);

        Assert.Equal("checks.notebooks[0]", error.Path);
        Assert.Contains("is not a notebook", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingSamplesFolder_IsReported()
    {
        using var dir = new TempDir();

        var error = SingleError("""
            name: demo
            samples: notebooks
            """, dir.Path);

        Assert.Equal("samples", error.Path);
        Assert.Equal((2, 10), (error.Line, error.Column));
        Assert.Contains("'notebooks' does not exist", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SamplesGivenAsAFile_IsReported()
    {
        using var dir = new TempDir();
        dir.Write("samples", "not a folder");

        var error = SingleError("""
            name: demo
            samples: samples
            """, dir.Path);

        Assert.Equal("samples", error.Path);
        Assert.Contains("expected a folder", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SamplesOutsideTheEnvironmentFolder_IsReported()
    {
        using var dir = new TempDir();

        var error = SingleError("""
            name: demo
            samples: ../elsewhere
            """, dir.Path);

        Assert.Equal("samples", error.Path);
        Assert.Contains("must be a path inside the environment folder", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FilesTargetNotAbsolute_IsReported()
    {
        using var dir = new TempDir();
        dir.Write("data.csv", "a,b\n");

        var error = SingleError("""
            name: demo
            files:
              - source: data.csv
                target: data/data.csv
            """, dir.Path);

        Assert.Equal("files[0].target", error.Path);
        Assert.Equal((4, 13), (error.Line, error.Column));
        Assert.Contains("must be an absolute path inside the image", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Files_WithAbsoluteTarget_Load()
    {
        using var dir = new TempDir();
        dir.Write("data.csv", "a,b\n");

        var spec = Parse("""
            name: demo
            files:
              - source: ./data.csv
                target: /opt/data/data.csv
            """, dir.Path);

        Assert.Equal([new FileSpec("data.csv", "/opt/data/data.csv")], spec.Files);
    }

    // ---- env ----

    [Fact]
    public void ReservedEnvVar_IsReportedAtItsKey()
    {
        var error = SingleError("""
            name: demo
            env:
              JUPYTER_TOKEN: secret
            """);

        Assert.Equal("env.JUPYTER_TOKEN", error.Path);
        Assert.Equal((3, 3), (error.Line, error.Column));
        Assert.Contains("'JUPYTER_TOKEN' is reserved by OpenDSVM", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DsvmPrefixedEnvVar_IsReserved()
    {
        var error = SingleError("""
            name: demo
            env:
              DSVM_PORT: "9999"
            """);

        Assert.Equal("env.DSVM_PORT", error.Path);
        Assert.Contains("reserved", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EnvKeyThatIsNotAString_IsALocatedError()
    {
        var error = SingleError("""
            name: demo
            env:
              ? [a, b]
              : value
            """);

        Assert.Equal((3, 5), (error.Line, error.Column));
        Assert.Equal("env", error.Path);
        Assert.Equal("keys must be plain strings", error.Message);
    }

    [Fact]
    public void EnvValues_AreKeptAsStrings()
    {
        var spec = Parse("""
            name: demo
            env:
              OMP_NUM_THREADS: 2
              MPLBACKEND: Agg
            """);

        Assert.Equal("2", spec.Env["OMP_NUM_THREADS"]);
        Assert.Equal("Agg", spec.Env["MPLBACKEND"]);
    }

    // ---- file-level errors ----

    [Fact]
    public void InvalidYaml_ReportsTheLine()
    {
        var error = SingleError("""
            name: demo
            description: ok
            gpu: none: really
            """);

        Assert.Equal(3, error.Line);
        Assert.True(error.Column > 0);
        Assert.StartsWith("not valid YAML: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("(Line:", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    public void EmptyFile_IsReported(string text)
    {
        var error = SingleError(text);

        Assert.Equal((1, 1), (error.Line, error.Column));
        Assert.Equal("the file is empty", error.Message);
    }

    [Fact]
    public void TopLevelList_IsReported()
    {
        var error = SingleError("- name: demo\n");

        Assert.Equal("", error.Path);
        Assert.Contains("expected a mapping of keys at the top level", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AllErrors_AreReportedAtOnce_InFileOrder()
    {
        var errors = Errors("""
            name: Demo_Env
            toolsets: [python, jupyterlb]
            packages: [Bad_Pkg]
            gpu: maybe
            colour: blue
            """);

        Assert.Equal(5, errors.Count);
        Assert.Equal(["name", "toolsets[1]", "packages[0]", "gpu", "colour"], errors.Select(e => e.Path));
        Assert.Equal([1, 2, 3, 4, 5], errors.Select(e => e.Line));
    }

    [Fact]
    public void ManyErrors_MessageListsEachAsFileLineColumnPathMessage()
    {
        var ex = Assert.Throws<SpecValidationException>(() => Parse("""
            name: demo
            toolsets: [python, jupyterlb]
            gpu: maybe
            """));

        Assert.StartsWith("2 problems:", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{SpecFile}:2:20: toolsets[1]: unknown toolset 'jupyterlb'", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{SpecFile}:3:6: gpu: 'maybe' is not a GPU mode", ex.Message, StringComparison.Ordinal);
        Assert.Equal("invalid-spec", ex.Kind);
    }

    [Fact]
    public void SingleError_MessageIsFileLineColumnPathMessage()
    {
        var ex = Assert.Throws<SpecValidationException>(() => Parse("""
            name: demo
            toolset: [python]
            """));

        Assert.StartsWith($"{SpecFile}:2:1: toolset: unknown key 'toolset'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SpecErrorWithoutLine_PrintsOnlyTheFile()
    {
        var error = new SpecError("environment.yaml", 0, 0, "packages[0]", "unknown package");

        Assert.Equal("environment.yaml: packages[0]: unknown package", error.ToString());
    }

    [Fact]
    public void ErrorAt_UsesTheLocationRecordedWhileLoading()
    {
        var spec = Parse("""
            name: demo
            packages:
              - git
              - no-such-package
            """);

        var error = spec.ErrorAt("packages[1]", "unknown package");

        Assert.Equal((4, 5), (error.Line, error.Column));
        Assert.Equal(SpecFile, error.File);
    }
}
