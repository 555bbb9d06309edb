using Dsvm.Testing;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Tests;

public sealed class SizeCatalogTests
{
    private const string SizesFile = "config/sizes.yaml";
    private const long GiB = 1024L * 1024 * 1024;

    private static IReadOnlyList<SpecError> Errors(string yaml) =>
        Assert.Throws<SpecValidationException>(() => SizeCatalog.Parse(yaml, SizesFile)).Errors;

    // ---- defaults and lookup ----

    [Theory]
    [InlineData("small")]
    [InlineData("medium")]
    [InlineData("gpu-small")]
    public void Defaults_ContainTheStandardSizes(string name)
    {
        var catalog = new SizeCatalog(SizeCatalog.Defaults);

        Assert.True(catalog.Contains(name));
        Assert.Equal(name, catalog.Get(name).Name);
    }

    [Fact]
    public void Defaults_HaveSaneShapes()
    {
        var catalog = new SizeCatalog(SizeCatalog.Defaults);

        Assert.True(catalog.Contains(SizeCatalog.DefaultSize));
        Assert.Equal(new MachineSize("medium", 2, 4, 0, SizeClass.General), catalog.Get("medium") with { Description = "" });
        var gpu = catalog.Get("gpu-small");
        Assert.Equal(SizeClass.Gpu, gpu.Class);
        Assert.Equal(1, gpu.Gpus);
        Assert.All(catalog.All.Where(s => s.Class != SizeClass.Gpu), s => Assert.Equal(0, s.Gpus));
        Assert.All(catalog.All.Where(s => s.Class == SizeClass.Gpu), s => Assert.True(s.Gpus > 0));
        Assert.Equal(4 * GiB, catalog.Get("medium").MemoryBytes);
        Assert.Equal(2_000_000_000, catalog.Get("medium").NanoCpus);
    }

    [Fact]
    public void Get_UnknownName_IsNotFoundWithDidYouMean()
    {
        var catalog = new SizeCatalog(SizeCatalog.Defaults);

        var ex = Assert.Throws<NotFoundException>(() => catalog.Get("meduim"));

        Assert.Contains("unknown size 'meduim'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'medium'?", ex.Message, StringComparison.Ordinal);
        Assert.Contains("gpu-small", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_FarOffName_IsNotFoundWithoutSuggestion()
    {
        var ex = Assert.Throws<NotFoundException>(() => new SizeCatalog(SizeCatalog.Defaults).Get("enormous-machine"));

        Assert.DoesNotContain("did you mean", ex.Message, StringComparison.Ordinal);
    }

    // ---- host fit ----

    [Fact]
    public void WhyNot_Fits_IsNull()
    {
        var size = new MachineSize("s", 2, 4, 1, SizeClass.Gpu);

        Assert.Null(SizeCatalog.WhyNot(size, new HostCapacity(2, 4 * GiB, 1)));
        Assert.Null(SizeCatalog.WhyNot(size, new HostCapacity(64, 256 * GiB, 8)));
    }

    [Fact]
    public void WhyNot_TooFewCpus()
    {
        var why = SizeCatalog.WhyNot(new MachineSize("big", 8, 4, 0, SizeClass.General), new HostCapacity(4, 64 * GiB, 0));

        Assert.Equal("needs 8 vCPUs; this host has 4", why);
    }

    [Fact]
    public void WhyNot_TooLittleMemory()
    {
        var why = SizeCatalog.WhyNot(new MachineSize("fat", 2, 64, 0, SizeClass.Memory), new HostCapacity(16, 32 * GiB, 0));

        Assert.NotNull(why);
        Assert.Contains("needs 64 GiB of memory", why, StringComparison.Ordinal);
        Assert.Contains("this host has 32 GiB", why, StringComparison.Ordinal);
    }

    [Fact]
    public void WhyNot_NoGpu()
    {
        var why = SizeCatalog.WhyNot(new MachineSize("g", 2, 8, 1, SizeClass.Gpu), new HostCapacity(16, 32 * GiB, 0));

        Assert.Equal("needs 1 GPU(s); this host has none", why);
    }

    [Fact]
    public void WhyNot_TooFewGpus()
    {
        var why = SizeCatalog.WhyNot(new MachineSize("g", 2, 8, 4, SizeClass.Gpu), new HostCapacity(16, 32 * GiB, 2));

        Assert.Equal("needs 4 GPUs; this host has 2", why);
    }

    // ---- sizes.yaml ----

    [Fact]
    public void Parse_ValidFile_ReadsEverySize()
    {
        const string yaml = """
            plain:
              vcpus: 4
              memory: 16
            gibs:
              vcpus: 0.5
              memory: "16Gi"
              description: half a core
            mibs:
              vcpus: 1
              memory: "512Mi"
              class: memory
            gpu-box:
              vcpus: 8
              memory: 32G
              gpus: 2
            """;

        var sizes = SizeCatalog.Parse(yaml, SizesFile).ToDictionary(s => s.Name);

        Assert.Equal(4, sizes.Count);
        Assert.Equal(new MachineSize("plain", 4, 16, 0, SizeClass.General), sizes["plain"]);
        Assert.Equal(new MachineSize("gibs", 0.5, 16, 0, SizeClass.General, "half a core"), sizes["gibs"]);
        Assert.Equal(new MachineSize("mibs", 1, 0.5, 0, SizeClass.Memory), sizes["mibs"]);
        Assert.Equal(512L * 1024 * 1024, sizes["mibs"].MemoryBytes);
        Assert.Equal(500_000_000, sizes["gibs"].NanoCpus);
        // gpus > 0 without a class is a gpu-class size.
        Assert.Equal(new MachineSize("gpu-box", 8, 32, 2, SizeClass.Gpu), sizes["gpu-box"]);
    }

    [Fact]
    public void Parse_ReportsEveryProblemWithLineAndKeyPath()
    {
        const string yaml = """
            good:
              vcpus: 2
              memory: 16
            bad-key:
              vcpus: 1
              memory: 2
              cpus: 3
            no-vcpus:
              memory: 4
            negative:
              vcpus: -1
              memory: 4
            bad-class:
              vcpus: 1
              memory: 4
              class: huge
            gpu-without-gpus:
              vcpus: 1
              memory: 4
              class: gpu
            Bad_Name:
              vcpus: 1
              memory: 1
            """;

        var errors = Errors(yaml);

        Assert.All(errors, e => Assert.Equal(SizesFile, e.File));
        var byPath = errors.ToDictionary(e => e.Path);
        Assert.Equal(6, errors.Count);

        Assert.Equal(7, byPath["bad-key.cpus"].Line);
        Assert.Contains("unknown key 'cpus'", byPath["bad-key.cpus"].Message, StringComparison.Ordinal);
        Assert.Contains("did you mean", byPath["bad-key.cpus"].Message, StringComparison.Ordinal);

        // A missing key is reported where its mapping starts.
        Assert.Equal(9, byPath["no-vcpus.vcpus"].Line);
        Assert.Contains("required", byPath["no-vcpus.vcpus"].Message, StringComparison.Ordinal);

        Assert.Equal(11, byPath["negative.vcpus"].Line);
        Assert.Contains("a number of vCPUs from 0.01 to 1024", byPath["negative.vcpus"].Message, StringComparison.Ordinal);

        Assert.Equal(16, byPath["bad-class.class"].Line);
        Assert.Contains("'huge' is not a size class", byPath["bad-class.class"].Message, StringComparison.Ordinal);

        Assert.Equal(20, byPath["gpu-without-gpus.class"].Line);
        Assert.Contains("gpus: 1 or more", byPath["gpu-without-gpus.class"].Message, StringComparison.Ordinal);

        Assert.Equal(21, byPath["Bad_Name"].Line);
        Assert.Contains("not a valid size name", byPath["Bad_Name"].Message, StringComparison.Ordinal);

        Assert.All(errors, e => Assert.True(e.Column >= 1));
    }

    [Fact]
    public void Parse_ExceptionMessage_ListsEveryProblemWithFileAndLine()
    {
        const string yaml = """
            a:
              vcpus: 0
              memory: 1
            b:
              vcpus: 1
              memory: lots
            """;

        var ex = Assert.Throws<SpecValidationException>(() => SizeCatalog.Parse(yaml, SizesFile));

        Assert.Equal(2, ex.Errors.Count);
        Assert.Contains("2 problems", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{SizesFile}:2:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("a.vcpus", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{SizesFile}:6:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("b.memory", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpus: -1")]
    [InlineData("gpus: 1.5")]
    [InlineData("gpus: 17")]
    [InlineData("gpus: many")]
    public void Parse_BadGpuCount_IsAnError(string line)
    {
        var error = Assert.Single(Errors($"x:\n  vcpus: 1\n  memory: 1\n  {line}\n"));

        Assert.Equal("x.gpus", error.Path);
        Assert.Equal(4, error.Line);
    }

    [Theory]
    [InlineData("[1, 2]")]
    [InlineData("just text")]
    public void Parse_NotAMapping_IsAnError(string yaml)
    {
        var error = Assert.Single(Errors(yaml));

        Assert.Contains("expected a mapping", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_InvalidYaml_IsAnErrorWithLine()
    {
        var error = Assert.Single(Errors("a:\n  vcpus: 1\n  memory: [1\n"));

        Assert.Contains("not valid YAML", error.Message, StringComparison.Ordinal);
        Assert.True(error.Line >= 3);
    }

    [Fact]
    public void Parse_SizeNotAMapping_IsAnError()
    {
        var error = Assert.Single(Errors("a: 4\n"));

        Assert.Equal("a", error.Path);
        Assert.Equal(1, error.Line);
    }

    // ---- loading ----

    [Fact]
    public void Load_NoUserFile_IsTheDefaults()
    {
        using var dir = new TempDir();

        var fromNull = SizeCatalog.Load(null);
        var fromMissing = SizeCatalog.Load(Path.Combine(dir.Path, SizeCatalog.FileName));

        Assert.Equal(SizeCatalog.Defaults.OrderBy(s => s.Name), fromNull.All.OrderBy(s => s.Name));
        Assert.Equal(SizeCatalog.Defaults.OrderBy(s => s.Name), fromMissing.All.OrderBy(s => s.Name));
    }

    [Fact]
    public void Load_AFileOfCommentsOnlyOrEmpty_IsTheDefaults()
    {
        // What a shipped example looks like with every size commented out (deploy/swarm/sizes.yaml, a ConfigMap's key).
        using var dir = new TempDir();
        var comments = dir.Write("comments.yaml", "# Sizes besides the defaults, e.g.:\n#   tiny: {vcpus: 0.5, memory: 1}\n");
        var empty = dir.Write("empty.yaml", "");

        Assert.Equal(SizeCatalog.Defaults.OrderBy(s => s.Name), SizeCatalog.Load(comments).All.OrderBy(s => s.Name));
        Assert.Equal(SizeCatalog.Defaults.OrderBy(s => s.Name), SizeCatalog.Load(empty).All.OrderBy(s => s.Name));
    }

    [Fact]
    public void Load_MergesUserFileOverDefaults()
    {
        using var dir = new TempDir();
        var file = dir.Write(SizeCatalog.FileName, """
            medium:
              vcpus: 3
              memory: "6Gi"
              description: our medium
            huge:
              vcpus: 32
              memory: 256
            """);

        var catalog = SizeCatalog.Load(file);

        Assert.Equal(new MachineSize("medium", 3, 6, 0, SizeClass.General, "our medium"), catalog.Get("medium"));
        Assert.Equal(new MachineSize("huge", 32, 256, 0, SizeClass.General), catalog.Get("huge"));
        Assert.Equal(SizeCatalog.Defaults.First(s => s.Name == "small"), catalog.Get("small"));
        Assert.Equal(SizeCatalog.Defaults.Count + 1, catalog.All.Count());
        Assert.Single(catalog.All, s => s.Name == "medium");
    }

    [Fact]
    public void Load_InvalidUserFile_Throws()
    {
        using var dir = new TempDir();
        var file = dir.Write(SizeCatalog.FileName, "medium:\n  vcpus: 3\n");

        var ex = Assert.Throws<SpecValidationException>(() => SizeCatalog.Load(file));

        Assert.Equal(file, Assert.Single(ex.Errors).File);
    }

    [Fact]
    public void NetworkIsInternetByDefaultIsolatedOnRequestAndAnythingElseNamesTheKey()
    {
        var sizes = SizeCatalog.Parse("a:\n  vcpus: 1\n  memory: 2\nb:\n  vcpus: 1\n  memory: 2\n  network: isolated\n", SizesFile).ToDictionary(s => s.Name);
        Assert.Equal(WorkspaceNetwork.Internet, sizes["a"].Network);
        Assert.Equal(WorkspaceNetwork.Isolated, sizes["b"].Network);
        var e = Assert.Single(Errors("c:\n  vcpus: 1\n  memory: 2\n  network: host\n"));
        Assert.Equal("c.network", e.Path);
        Assert.Equal(4, e.Line);
        Assert.Single(Errors("c:\n  vcpus: 1\n  memory: 2\n  network: 1\n"));
    }
}
