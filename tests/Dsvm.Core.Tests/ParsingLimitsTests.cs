using System.Text;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Core.Tests;

/// <summary>
/// The YAML inputs (environment.yaml, sizes.yaml, backends.yaml) cannot crash or stall the tool: nesting, size,
/// value length and syntax faults are located errors; list checks are linear; numbers are finite and in bounds.
/// </summary>
public sealed class ParsingLimitsTests
{
    private const string SpecFile = "envs/demo/environment.yaml";
    private const string SizesFile = "/etc/dsvm/sizes.yaml";
    private const string BackendsFile = "/etc/dsvm/backends.yaml";
    private static readonly string NoDirectory = Path.Combine(Path.GetTempPath(), "dsvm-tests-no-such-folder");

    /// <summary>The three loaders, each on the same text.</summary>
    public static TheoryData<string> Loaders => ["environment", "sizes", "backends"];

    private static void Load(string loader, string text)
    {
        switch (loader)
        {
            case "environment":
                SpecLoader.Parse(text, SpecFile, NoDirectory, ToolsetCatalog.Default);
                break;
            case "sizes":
                SizeCatalog.Parse(text, SizesFile);
                break;
            default:
                BackendConfig.Parse(text, BackendsFile, TestBackendTypes.Registry);
                break;
        }
    }

    private static string FileOf(string loader) => loader switch { "environment" => SpecFile, "sizes" => SizesFile, _ => BackendsFile };

    /// <summary>The single located error that <paramref name="text"/> gives, within the guard's bound.</summary>
    private static SpecError Refused(string loader, string text)
    {
        SpecError? error = null;
        Fuzz.Bounded(loader, () => error = Assert.Single(Assert.Throws<SpecValidationException>(() => Load(loader, text)).Errors));
        Assert.Equal(FileOf(loader), error!.File);
        Assert.True(error.Line >= 1, error.ToString());
        return error;
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void Deep_flow_nesting_is_a_located_error_not_a_stack_overflow(string loader)
    {
        var text = "x: " + string.Concat(Enumerable.Repeat("{a: ", 20000)) + "1" + new string('}', 20000) + "\n";
        var error = Refused(loader, text);
        Assert.Contains("nested deeper than", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, error.Line);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void Deep_block_nesting_is_a_located_error(string loader)
    {
        var text = new StringBuilder();
        for (var i = 0; i < 2000; i++)
        {
            text.Append(' ', i).Append("k:\n");
        }

        var error = Refused(loader, text.ToString());
        Assert.Contains("nested deeper than", error.Message, StringComparison.Ordinal);
        Assert.Equal(33, error.Line); // SpecYaml.MaxDepth + 1
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void Scanner_faults_are_located_errors(string loader)
    {
        var error = Refused(loader, "x: [[\ny");
        Assert.StartsWith("not valid YAML", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Operation is not valid", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void Aliases_are_refused_where_they_are_used(string loader)
    {
        var error = Refused(loader, "a: &x [1, 2]\nb: *x\n");
        Assert.Equal((2, 4), (error.Line, error.Column));
        Assert.Contains("aliases", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void A_ten_megabyte_value_is_refused_by_the_size_limit(string loader)
    {
        var error = Refused(loader, "description: " + new string('x', 10 * 1024 * 1024) + "\n");
        Assert.Contains("limit is 4 MiB", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void A_long_value_under_the_file_limit_is_refused_at_its_place(string loader)
    {
        var error = Refused(loader, "a: 1\nb: " + new string('x', 2 * 1024 * 1024) + "\n");
        Assert.Equal((2, 4), (error.Line, error.Column));
        Assert.Contains("the limit is 65536", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_large_file_is_refused_before_it_is_read()
    {
        using var dir = new TempDir();
        var file = dir.Write("sizes.yaml", "# " + new string('x', 4 * 1024 * 1024) + "\n");
        var ex = Assert.Throws<SpecValidationException>(() => SizeCatalog.Load(file));
        Assert.StartsWith($"{file}:1:1: the file is 4 MiB", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_hundred_thousand_packages_are_checked_in_linear_time()
    {
        var text = new StringBuilder("name: big\ntoolsets: [python]\npackages:\n");
        for (var i = 0; i < 200_000; i++)
        {
            text.Append("  - pkg").Append(i).Append('\n');
        }

        text.Append("  - pkg7\n");
        SpecError? error = null;
        // Linear work takes about a second here; the quadratic check took minutes.
        Fuzz.Bounded("200k packages", () => error = Assert.Single(Assert.Throws<SpecValidationException>(() => Load("environment", text.ToString())).Errors),
            TimeSpan.FromSeconds(20));
        Assert.Equal("packages[200000]", error!.Path);
        Assert.Equal(200_004, error.Line);
    }

    [Fact]
    public void Many_bad_routes_are_reported_in_bounded_time_and_text()
    {
        var text = new StringBuilder("backends:\n");
        for (var i = 0; i < 20_000; i++)
        {
            text.Append("  b").Append(i).Append(": {type: docker}\n");
        }

        text.Append("routes:\n  sizes:\n");
        for (var i = 0; i < 20_000; i++)
        {
            text.Append("    s").Append(i).Append(": c").Append(i).Append('\n');
        }

        SpecValidationException? ex = null;
        Fuzz.Bounded("20k bad routes", () => ex = Assert.Throws<SpecValidationException>(() => Load("backends", text.ToString())), TimeSpan.FromSeconds(20));
        Assert.Equal(20_000, ex!.Errors.Count);
        Assert.True(ex.Message.Length < 100_000, $"message of {ex.Message.Length} characters");
        Assert.EndsWith("… and 19950 more", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vcpus", "NaN")]
    [InlineData("vcpus", "Infinity")]
    [InlineData("vcpus", "1e-300")]
    [InlineData("vcpus", "1e400")]
    [InlineData("vcpus", "0.001")]
    [InlineData("vcpus", "-2")]
    [InlineData("vcpus", "2e0")]
    [InlineData("vcpus", "4096")]
    [InlineData("memory", "1e-300")]
    [InlineData("memory", "Infinity")]
    [InlineData("memory", "1e400")]
    [InlineData("memory", "5GGGG")]
    [InlineData("memory", "NaN")]
    [InlineData("memory", "32Mi")]
    [InlineData("memory", "0")]
    [InlineData("memory", "100Ti")]
    [InlineData("memory", "-4")]
    [InlineData("gpus", "1.5")]
    [InlineData("gpus", "-1")]
    [InlineData("gpus", "NaN")]
    [InlineData("gpus", "99")]
    public void Sizes_refuse_numbers_that_are_not_finite_or_out_of_bounds(string key, string value)
    {
        var values = new Dictionary<string, string> { ["vcpus"] = "2", ["memory"] = "4Gi", ["gpus"] = "0" };
        values[key] = value;
        var text = $"custom:\n  vcpus: {values["vcpus"]}\n  memory: {values["memory"]}\n  gpus: {values["gpus"]}\n";
        var error = Assert.Single(Assert.Throws<SpecValidationException>(() => SizeCatalog.Parse(text, SizesFile)).Errors);
        Assert.Equal($"custom.{key}", error.Path);
        Assert.Equal(key switch { "vcpus" => 2, "memory" => 3, _ => 4 }, error.Line);
        Assert.Equal(key.Length + 5, error.Column);
    }

    [Theory]
    [InlineData("0.01", "64Mi", 0.01, 0.0625)]
    [InlineData("0.5", "512M", 0.5, 0.5)]
    [InlineData("2", "16", 2, 16)]
    [InlineData("8", "1.5Gi", 8, 1.5)]
    [InlineData("64", "1Ti", 64, 1024)]
    [InlineData("1024", "16Ti", 1024, 16384)]
    public void Sizes_accept_plain_numbers_and_units_within_bounds(string vcpus, string memory, double cpu, double gib)
    {
        var size = Assert.Single(SizeCatalog.Parse($"custom:\n  vcpus: {vcpus}\n  memory: \"{memory}\"\n", SizesFile));
        Assert.Equal(cpu, size.Vcpus);
        Assert.Equal(gib, size.MemoryGiB);
        Assert.True(size.NanoCpus >= 10_000_000 && size.MemoryBytes >= 64L << 20);
    }

    [Fact]
    public void An_unknown_size_in_routes_is_reported_in_the_file()
    {
        var config = BackendConfig.Parse("backends:\n  docker: {}\nroutes:\n  sizes:\n    smal: docker\n", BackendsFile, TestBackendTypes.Registry);
        var ex = Assert.Throws<SpecValidationException>(() => config.CheckSizes(new SizeCatalog(SizeCatalog.Defaults)));
        var error = Assert.Single(ex.Errors);
        Assert.Equal($"{BackendsFile}:5:5: routes.sizes.smal: no size 'smal' (did you mean 'small'?) (see `dsvm sizes`)", error.ToString());
    }

    // ---- fuzz: a few hundred mutations per input, fixed seeds ----

    private const string EnvironmentSeed = """
        name: demo
        description: A demo environment
        base:
          distribution: debian
          suite: trixie
          components: [main, contrib]
          mirror: http://deb.debian.org/debian
        toolsets: [python, jupyterlab]
        packages:
          - curl
          - git
        env:
          FOO: bar
        kernels: [python3]
        gpu: none
        checks:
          python: [json]
          commands: ["echo ok"]

        """;

    private const string SizesSeed = """
        tiny:
          vcpus: 0.5
          memory: 512Mi
          description: half a CPU
        big-gpu:
          vcpus: 16
          memory: "64Gi"
          gpus: 2
          class: gpu
        mem:
          vcpus: 2
          memory: 32
          class: memory

        """;

    private const string BackendsSeed = """
        default: docker
        backends:
          docker: {}
          swarm: { manager: "tcp://10.0.0.2:2376", registry: "10.0.0.2:5000" }
          gpu-cluster: { type: kubernetes, namespace: dsvm }
          vm: { type: qemu, accelerator: tcg, start-timeout: 300 }
        routes:
          sizes: { gpu-small: gpu-cluster, small: docker }
          classes: { memory: swarm, gpu: gpu-cluster }

        """;

    [Theory]
    [InlineData("environment", 1201)]
    [InlineData("sizes", 1202)]
    [InlineData("backends", 1203)]
    public void Fuzzed_inputs_are_accepted_or_clear_errors_never_crashes(string loader, int seed)
    {
        var text = loader switch { "environment" => EnvironmentSeed, "sizes" => SizesSeed, _ => BackendsSeed };
        Load(loader, text); // the seed itself is valid
        var n = 0;
        foreach (var input in Fuzz.Cases(text, 300, seed))
        {
            var i = n++;
            Fuzz.Bounded($"{loader} case {i}", () =>
            {
                try
                {
                    Load(loader, input);
                }
                catch (SpecValidationException ex)
                {
                    Assert.NotEmpty(ex.Errors);
                    Assert.All(ex.Errors, e => Assert.Equal(FileOf(loader), e.File));
                    Assert.DoesNotContain("   at ", ex.Message, StringComparison.Ordinal);
                }
            });
        }
    }
}
