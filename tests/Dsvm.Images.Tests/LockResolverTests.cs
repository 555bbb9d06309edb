using Dsvm.Core;
using Dsvm.Core.Specs;

namespace Dsvm.Images.Tests;

public sealed class LockResolverTests
{
    private static readonly EnvironmentSpec Spec = new() { Name = "demo", FilePath = "envs/demo/environment.yaml" };

    // ---- AptInputs: what a re-lock may keep ----

    [Fact]
    public void AptInputs_IgnoreWhatDoesNotReachApt_AndFollowWhatDoes()
    {
        static string Inputs(string spec)
        {
            using var env = new DemoEnvironment(spec);
            return LockResolver.AptInputs(env.Spec(), Dsvm.Core.Specs.ToolsetCatalog.Default);
        }

        var original = Inputs(DemoEnvironment.SpecText);
        // Name, description, environment variables and a pip section: the Debian pins stay right.
        Assert.Equal(original, Inputs(DemoEnvironment.SpecText.Replace("name: demo", "name: other", StringComparison.Ordinal)
            .Replace("Demo \"quoted\" environment", "changed", StringComparison.Ordinal)
            .Replace("MPLBACKEND: Agg", "MPLBACKEND: svg", StringComparison.Ordinal)
            + "\npip:\n  index: http://127.0.0.1:9/simple\n  requirements: [dsvm-a==1.0]\n"));
        // A package, a toolset or the mirror: resolved again.
        Assert.NotEqual(original, Inputs(DemoEnvironment.SpecText.Replace("packages: [fonts-dejavu-core]", "packages: [fonts-dejavu-core, curl]", StringComparison.Ordinal)));
        Assert.NotEqual(original, Inputs(DemoEnvironment.SpecText.Replace("toolsets: [python, jupyterlab, git]", "toolsets: [python, jupyterlab]", StringComparison.Ordinal)));
        Assert.NotEqual(original, Inputs(DemoEnvironment.SpecText + "\nbase:\n  mirror: http://127.0.0.1:9/debian\n"));
    }

    // ---- Sections ----

    [Fact]
    public void Sections_SplitsAtMarkers_AndSkipsEmptyLines()
    {
        var sections = LockResolver.Sections("@@arch\namd64\n@@base\napt=3.0.4\n\nbash=5.2.37-2\n@@end\n");

        Assert.Equal(["amd64"], sections["arch"]);
        Assert.Equal(["apt=3.0.4", "bash=5.2.37-2"], sections["base"]);
        Assert.Empty(sections["end"]);
    }

    [Fact]
    public void Sections_IgnoresLinesBeforeTheFirstMarker_AndCrLf()
    {
        var sections = LockResolver.Sections("noise\r\n@@names\r\ngit\r\ngit-man\r\n");

        Assert.Equal(["names"], sections.Keys);
        Assert.Equal(["git", "git-man"], sections["names"]);
    }

    [Fact]
    public void Sections_WithoutEndMarker_HasNoEndSection() =>
        Assert.False(LockResolver.Sections("@@arch\namd64\n@@base\n").ContainsKey("end"));

    // ---- ParseSimulation ----

    [Fact]
    public void ParseSimulation_ReadsInstLines_SortedByName()
    {
        string[] lines =
        [
            "Reading package lists...",
            "Building dependency tree...",
            "The following NEW packages will be installed:",
            "  git git-man",
            "Inst git-man (1:2.47.3-0+deb13u1 Debian:13.1/stable [all])",
            "Inst git (1:2.47.3-0+deb13u1 Debian:13.1/stable [amd64])",
            "Conf git-man (1:2.47.3-0+deb13u1 Debian:13.1/stable [all])",
            "Conf git (1:2.47.3-0+deb13u1 Debian:13.1/stable [amd64])",
        ];

        var packages = LockResolver.ParseSimulation(lines, Spec, "toolsets");

        Assert.Equal(["git=1:2.47.3-0+deb13u1", "git-man=1:2.47.3-0+deb13u1"], packages.Select(p => p.ToString()));
    }

    [Fact]
    public void ParseSimulation_ReadsUpgradesWithTheOldVersionInBrackets()
    {
        var packages = LockResolver.ParseSimulation(
            ["Inst libc6 [2.41-11] (2.41-12 Debian:13.2/stable [amd64]) []"], Spec, "toolsets");

        Assert.Equal("libc6=2.41-12", Assert.Single(packages).ToString());
    }

    [Fact]
    public void ParseSimulation_StripsTheArchitectureSuffix()
    {
        var packages = LockResolver.ParseSimulation(
            ["Inst libpython3.13:amd64 (3.13.5-2 Debian:13.1/stable [amd64])"], Spec, "toolsets");

        Assert.Equal("libpython3.13", Assert.Single(packages).Name);
    }

    [Fact]
    public void ParseSimulation_IgnoresConfLines()
    {
        var packages = LockResolver.ParseSimulation(
            ["Conf python3 (3.13.5-1 Debian:13.1/stable [amd64])"], Spec, "toolsets");

        Assert.Empty(packages);
    }

    [Fact]
    public void ParseSimulation_KeepsOnePackagePerName()
    {
        var packages = LockResolver.ParseSimulation(
            [
                "Inst libfoo1:amd64 (1.0-1 Debian:13.1/stable [amd64])",
                "Inst libfoo1:i386 (1.0-1 Debian:13.1/stable [i386])",
            ], Spec, "toolsets");

        Assert.Single(packages);
    }

    [Fact]
    public void ParseSimulation_AptError_IsALockExceptionNamingTheSpec()
    {
        string[] lines =
        [
            "Reading package lists...",
            "Building dependency tree...",
            "Some packages could not be installed.",
            "The following packages have unmet dependencies:",
            " python3-torch : Depends: libtorch2.6 but it is not going to be installed",
            "E: Unable to correct problems, you have held broken packages.",
        ];

        var ex = Assert.Throws<LockException>(() => LockResolver.ParseSimulation(lines, Spec, "packages"));

        Assert.StartsWith("envs/demo/environment.yaml: apt cannot install the packages of 'demo' together:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("E: Unable to correct problems", ex.Message, StringComparison.Ordinal);
        Assert.Contains("python3-torch : Depends: libtorch2.6", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Reading package lists", ex.Message, StringComparison.Ordinal);
        Assert.Equal("lock", ex.Kind);
    }
}
