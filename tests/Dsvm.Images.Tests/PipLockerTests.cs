using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images.Tests;

/// <summary>pip's report read into pins, pip's failures turned into located errors, and the rendered pip layer.</summary>
public sealed class PipLockerTests
{
    private const string SpecText = "name: demo\ntoolsets: [python]\npip:\n  index: http://127.0.0.1:9/simple/\n  requirements:\n    - Dsvm_A>=1\n    - dsvm-c\n";

    private static EnvironmentSpec Spec() => SpecLoader.Parse(SpecText, "envs/demo/environment.yaml", "envs/demo", ToolsetCatalog.Default);

    private static readonly string A = new('a', 64);
    private static readonly string B = new('b', 64);

    [Fact]
    public void Report_GivesEveryInstalledDistributionNormalisedAndSortedWithItsSha256()
    {
        var json = """
            {"version": "1", "pip_version": "25.1.1", "install": [
              {"download_info": {"url": "http://127.0.0.1:9/files/dsvm_b-1.0-py3-none-any.whl", "archive_info": {"hash": "sha256=BBB", "hashes": {"sha256": "BBB"}}},
               "is_direct": false, "requested": false, "metadata": {"name": "dsvm_b", "version": "1.0"}},
              {"download_info": {"url": "http://127.0.0.1:9/files/Dsvm_A-2.0-py3-none-any.whl", "archive_info": {"hash": "sha256=AAA"}},
               "is_direct": false, "requested": true, "metadata": {"name": "Dsvm.A", "version": "2.0rc1"}}
            ], "environment": {}}
            """.Replace("AAA", A, StringComparison.Ordinal).Replace("BBB", B, StringComparison.Ordinal);

        var pins = PipLocker.ParseReport(json, Spec());

        Assert.Equal([new LockedPipPackage("dsvm-a", "2.0rc1", A), new LockedPipPackage("dsvm-b", "1.0", B)], pins);
    }

    [Fact]
    public void Report_WithoutAFileHash_IsAClearError()
    {
        var json = """{"install": [{"download_info": {"url": "file:///src/x", "dir_info": {}}, "metadata": {"name": "x", "version": "1"}}]}""";

        var e = Assert.Throws<LockException>(() => PipLocker.ParseReport(json, Spec()));

        Assert.Contains("x 1 without a sha256", e.Message, StringComparison.Ordinal);
        Assert.Throws<LockException>(() => PipLocker.ParseReport("not json", Spec()));
    }

    [Fact]
    public void LockFailure_ForARequirement_IsLocatedAtItAndSaysWhatTheIndexHas()
    {
        const string stderr = "ERROR: Could not find a version that satisfies the requirement dsvm-a>=1 (from versions: 0.1, 0.2)\nERROR: No matching distribution found for dsvm-a>=1\n";

        var e = Assert.Single(Assert.IsType<SpecValidationException>(PipLocker.ExplainLockFailure(Spec(), stderr)).Errors);

        Assert.Equal(("pip.requirements[0]", 6, 7), (e.Path, e.Line, e.Column));
        Assert.Equal("the index http://127.0.0.1:9/simple/ has no wheel for this image that satisfies 'dsvm-a>=1' (it has: 0.1, 0.2)", e.Message);
    }

    [Fact]
    public void LockFailure_ForADependency_NamesIt_AndOtherFailuresKeepPipsWords()
    {
        const string stderr = "ERROR: Could not find a version that satisfies the requirement dsvm-b>=9 (from versions: none)\nERROR: No matching distribution found for dsvm-b>=9\n";

        var e = Assert.Single(Assert.IsType<SpecValidationException>(PipLocker.ExplainLockFailure(Spec(), stderr)).Errors);
        Assert.Equal("pip.requirements", e.Path);
        Assert.Contains("'dsvm-b>=9' (it has no version of it)", e.Message, StringComparison.Ordinal);

        var other = PipLocker.ExplainLockFailure(Spec(), "WARNING: Retrying...\nERROR: Cannot install dsvm-a and dsvm-c because these package versions have conflicting dependencies.\n");
        Assert.IsType<LockException>(other);
        Assert.Contains("conflicting dependencies", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BuildFailure_NamesTheLostVersionOrTheChangedFile()
    {
        var spec = Spec();
        string[] lost =
        [
            "Step 9/20 : RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install --no-deps --require-hashes ...",
            "ERROR: Could not find a version that satisfies the requirement dsvm-b==1.0 (from versions: 2.0)",
            "ERROR: No matching distribution found for dsvm-b==1.0",
        ];
        Assert.Equal(
            $"the index http://127.0.0.1:9/simple/ no longer has dsvm-b==1.0 (pinned in {Path.Combine("envs/demo", "environment.lock")}); run `dsvm env lock envs/demo` to resolve current versions",
            ImageBuilder.Explain(lost, lost[0], spec));

        string[] changed =
        [
            "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes. Otherwise, examine the package contents carefully; someone may have tampered with them.",
            "    dsvm-b==1.0 from http://127.0.0.1:9/files/dsvm_b-1.0-py3-none-any.whl:",
            "        Expected sha256 " + B,
            "             Got        " + A,
        ];
        Assert.StartsWith("the index http://127.0.0.1:9/simple/ serves a different file for dsvm-b==1.0 than the one pinned", ImageBuilder.Explain(changed, "", spec), StringComparison.Ordinal);
    }

    [Fact]
    public void PipLayer_InstallsTheLockByHashAfterTheDebianPackages_AndOnlyALoopbackIndexGetsTheHostNetwork()
    {
        var spec = Spec();
        var aptOnly = new EnvironmentLock
        {
            Environment = "demo", SpecDigest = spec.Digest,
            Base = new BaseLock { Distribution = "debian", Suite = "trixie", Components = ["main"], Mirror = BaseSpec.DefaultMirror, RootfsDigest = "sha256:" + new string('0', 64) },
            BasePackages = [new("bash", "5")], ToolsetPackages = [new("python3-pip", "25")], ExtraPackages = [],
        };
        var withPip = aptOnly with { Pip = new PipLock { Index = spec.Pip!.Index, Packages = [new("dsvm-a", "2.0", A)] } };

        var plain = DockerfileRenderer.Render(spec, aptOnly, ToolsetCatalog.Default);
        var pip = DockerfileRenderer.Render(spec, withPip, ToolsetCatalog.Default);
        var dockerfile = pip.Context.Text("Dockerfile");

        Assert.DoesNotContain("pip install", plain.Context.Text("Dockerfile"), StringComparison.Ordinal);
        Assert.False(plain.Context.Contains(PipLayer.RequirementsPath));
        Assert.NotEqual(plain.Tag, pip.Tag);
        Assert.Contains($"dsvm-a==2.0 --hash=sha256:{A}\n", pip.Context.Text(PipLayer.RequirementsPath), StringComparison.Ordinal);
        var install = dockerfile.IndexOf("RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install --no-deps --require-hashes --only-binary=:all:", StringComparison.Ordinal);
        Assert.True(install > dockerfile.IndexOf("DSVM-LOCK-MISMATCH", StringComparison.Ordinal), dockerfile);
        Assert.True(install < dockerfile.IndexOf("COPY dsvm/runtime/bin/", StringComparison.Ordinal), dockerfile);

        Assert.Equal(["--network", "host"], PipLocker.NetworkArgs("http://127.0.0.1:9/simple/"));
        Assert.Empty(PipLocker.NetworkArgs(PipSpec.DefaultIndex));
        Assert.Empty(PipLocker.NetworkArgs(null));
        Assert.Equal(["--trusted-host", "mirror.lan:8080"], PipSpec.TrustedHostArgs("http://mirror.lan:8080/simple"));
        Assert.Empty(PipSpec.TrustedHostArgs("https://pypi.org/simple"));
    }
}
