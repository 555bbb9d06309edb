using Dsvm.Testing;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Tests;

public sealed class EnvironmentLockTests
{
    private const string LockFile = "envs/demo/environment.lock";

    private static EnvironmentLock Sample() => new()
    {
        Environment = "demo",
        SpecDigest = "sha256:" + new string('a', 64),
        Base = new BaseLock
        {
            Distribution = "debian",
            Suite = "trixie",
            Components = ["main", "contrib"],
            Mirror = "http://deb.debian.org/debian",
            Architecture = "arm64",
            RootfsDigest = "sha256:" + new string('b', 64),
        },
        BasePackages = [new("apt", "3.0.4"), new("bash", "5.2.37-2+b10"), new("bsdutils", "1:2.41.5-0+deb13u1")],
        ToolsetPackages = [new("git", "1:2.47.3-0+deb13u1"), new("git-man", "1:2.47.3-0+deb13u1"), new("python3", "3.13.5-1")],
        ExtraPackages = [new("fonts-dejavu-core", "2.37-8"), new("libfoo1", "1.0~rc1-2")],
    };

    private static EnvironmentLock RoundTrip(EnvironmentLock l) => EnvironmentLock.Parse(l.ToText(), LockFile);

    private static SpecValidationException Damaged(string text) =>
        Assert.Throws<SpecValidationException>(() => EnvironmentLock.Parse(text, LockFile));

    [Fact]
    public void ToTextThenParse_KeepsEveryField()
    {
        var original = Sample();

        var parsed = RoundTrip(original);

        Assert.Equal(original.Environment, parsed.Environment);
        Assert.Equal(original.SpecDigest, parsed.SpecDigest);
        Assert.Equal(original.Base.Distribution, parsed.Base.Distribution);
        Assert.Equal(original.Base.Suite, parsed.Base.Suite);
        Assert.Equal(original.Base.Components, parsed.Base.Components);
        Assert.Equal(original.Base.Mirror, parsed.Base.Mirror);
        Assert.Equal(original.Base.Architecture, parsed.Base.Architecture);
        Assert.Equal(original.Base.RootfsDigest, parsed.Base.RootfsDigest);
        Assert.Equal(original.BasePackages, parsed.BasePackages);
        Assert.Equal(original.ToolsetPackages, parsed.ToolsetPackages);
        Assert.Equal(original.ExtraPackages, parsed.ExtraPackages);
    }

    [Fact]
    public void AptInputs_AreWrittenAndReadWhenKnown_AndLocksWithoutThemStayAsTheyWere()
    {
        var inputs = "sha256:" + new string('c', 64);
        var with = Sample() with { AptInputs = inputs };
        Assert.Equal(inputs, RoundTrip(with).AptInputs);
        Assert.Contains($"\naptInputs: {inputs}\n", with.ToText(), StringComparison.Ordinal);

        // A lock made before the field existed: same text, same digest, read as unknown.
        var without = Sample();
        Assert.DoesNotContain("aptInputs", without.ToText(), StringComparison.Ordinal);
        Assert.Null(RoundTrip(without).AptInputs);
        Assert.Equal(without.Digest, RoundTrip(without).Digest);
        Assert.NotEqual(without.Digest, with.Digest);
    }

    [Fact]
    public void ToTextThenParse_KeepsAnEmptyGroup()
    {
        var original = Sample() with { ExtraPackages = [] };

        var parsed = RoundTrip(original);

        Assert.Contains("  extra: []\n", original.ToText(), StringComparison.Ordinal);
        Assert.Empty(parsed.ExtraPackages);
        Assert.Equal(original.Digest, parsed.Digest);
    }

    [Fact]
    public void ToText_SortsEachGroupByName()
    {
        var l = Sample() with { ExtraPackages = [new("zlib1g", "1:1.3"), new("aalib", "1.4")] };

        var parsed = RoundTrip(l);

        Assert.Equal(["aalib", "zlib1g"], parsed.ExtraPackages.Select(p => p.Name));
    }

    [Fact]
    public void Digest_IsStableAcrossInstancesAndRoundTrip()
    {
        Assert.Equal(Sample().Digest, Sample().Digest);
        Assert.Equal(Sample().Digest, RoundTrip(Sample()).Digest);
        Assert.Matches("^sha256:[0-9a-f]{64}$", Sample().Digest);
    }

    [Fact]
    public void Digest_IgnoresTheCommentLine()
    {
        var text = Sample().ToText();
        var firstLineEnd = text.IndexOf('\n', StringComparison.Ordinal);
        var edited = "# a different comment, edited by hand" + text[firstLineEnd..];

        var parsed = EnvironmentLock.Parse(edited, LockFile);

        Assert.NotEqual(text, edited);
        Assert.Equal(Sample().Digest, parsed.Digest);
    }

    [Fact]
    public void Digest_ChangesWhenOneVersionChanges()
    {
        var changed = Sample() with
        {
            ToolsetPackages = [new("git", "1:2.47.3-0+deb13u2"), new("git-man", "1:2.47.3-0+deb13u1"), new("python3", "3.13.5-1")],
        };

        Assert.NotEqual(Sample().Digest, changed.Digest);
    }

    [Fact]
    public void Digest_ChangesWhenAPackageMovesToAnotherLayer()
    {
        var original = Sample();
        var moved = original with
        {
            ToolsetPackages = original.ToolsetPackages.Concat(original.ExtraPackages).ToList(),
            ExtraPackages = [],
        };

        Assert.NotEqual(original.Digest, moved.Digest);
    }

    [Theory]
    [InlineData("1:2.47.3-0+deb13u1")]
    [InlineData("1.0~rc1-2")]
    [InlineData("2:9.1.1230-2+b1")]
    public void VersionsWithEpochsAndTildes_SurviveTheRoundTrip(string version)
    {
        var l = Sample() with { ExtraPackages = [new("pkg", version)] };

        var parsed = RoundTrip(l);

        Assert.Equal(version, Assert.Single(parsed.ExtraPackages).Version);
    }

    [Fact]
    public void MissingKey_IsReportedWithItsPath()
    {
        var text = string.Join('\n', Sample().ToText().Split('\n').Where(l => !l.StartsWith("specDigest:", StringComparison.Ordinal)));

        var error = Assert.Single(Damaged(text).Errors);

        Assert.Equal(LockFile, error.File);
        Assert.Equal("specDigest", error.Path);
        Assert.Contains("dsvm env lock", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingNestedKey_IsReportedWithItsPath()
    {
        var text = Sample().ToText().Replace("  rootfsDigest: sha256:" + new string('b', 64) + "\n", "", StringComparison.Ordinal);

        var error = Assert.Single(Damaged(text).Errors);

        Assert.Equal("base.rootfsDigest", error.Path);
    }

    [Fact]
    public void EntryWithoutEquals_IsReportedWithItsIndexAndLine()
    {
        var text = Sample().ToText().Replace("\"bash=5.2.37-2+b10\"", "\"bash\"", StringComparison.Ordinal);
        var line = text.Split('\n').ToList().FindIndex(l => l.Contains("\"bash\"", StringComparison.Ordinal)) + 1;

        var error = Assert.Single(Damaged(text).Errors);

        Assert.Equal("packages.base[1]", error.Path);
        Assert.Equal(line, error.Line);
        Assert.Contains("'bash' is not name=version", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongLockVersion_IsReported()
    {
        var text = Sample().ToText().Replace("lockVersion: 1\n", "lockVersion: 2\n", StringComparison.Ordinal);

        var error = Assert.Single(Damaged(text).Errors);

        Assert.Equal("lockVersion", error.Path);
        Assert.Contains("lock format 2 is not supported", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidYaml_IsReportedAsASpecError()
    {
        var error = Assert.Single(Damaged("lockVersion: 1\nbase: [unclosed\n").Errors);

        Assert.StartsWith("not valid YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PackagesNotAList_IsReportedWithItsPath()
    {
        var text = Sample().ToText().Replace("  extra:\n", "  extra: fonts-dejavu-core\n  ignored:\n", StringComparison.Ordinal);

        var error = Assert.Single(Damaged(text).Errors);

        Assert.Equal("packages.extra", error.Path);
    }

    [Fact]
    public void SaveThenLoad_RoundTrips()
    {
        using var dir = new TempDir();
        Sample().Save(dir.Path);

        var loaded = EnvironmentLock.Load(Path.Combine(dir.Path, EnvironmentLock.FileName));

        Assert.Equal(Sample().Digest, loaded.Digest);
        Assert.Equal(Sample().ToText(), File.ReadAllText(Path.Combine(dir.Path, EnvironmentLock.FileName)));
    }

    [Fact]
    public void Load_MissingFile_IsNotFound()
    {
        using var dir = new TempDir();

        var ex = Assert.Throws<NotFoundException>(() => EnvironmentLock.Load(Path.Combine(dir.Path, EnvironmentLock.FileName)));

        Assert.Contains("dsvm env lock", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CuratedMinimalLock_Parses()
    {
        var l = EnvironmentLock.Load(Path.Combine(Path.Combine(TestEnvironment.EnvironmentsDir, "minimal"), EnvironmentLock.FileName));

        Assert.Equal("minimal", l.Environment);
        Assert.NotEmpty(l.BasePackages);
        Assert.Contains(l.ToolsetPackages, p => p.Name == "python3");
    }

    [Fact]
    public void CuratedMinimalLock_MatchesItsSpec()
    {
        var dir = Path.Combine(TestEnvironment.EnvironmentsDir, "minimal");
        var l = EnvironmentLock.Load(Path.Combine(dir, EnvironmentLock.FileName));

        Assert.True(l.Matches(SpecLoader.Load(dir, ToolsetCatalog.Default)), "environments/minimal/environment.lock is stale; run `dsvm env lock minimal`");
    }

    [Fact]
    public void AllPackages_LetsTheLaterLayerWin()
    {
        var l = Sample() with
        {
            BasePackages = [new("libc6", "2.41-1"), new("bash", "5.2-1")],
            ToolsetPackages = [new("libc6", "2.41-2"), new("python3", "3.13")],
            ExtraPackages = [new("libc6", "2.41-3")],
        };

        Assert.Equal(
            ["bash=5.2-1", "libc6=2.41-3", "python3=3.13"],
            l.AllPackages.Select(p => p.ToString()));
    }

    [Fact]
    public void FirstLayerPackages_AreBaseOverriddenByToolsets_WithoutExtra()
    {
        var l = Sample() with
        {
            BasePackages = [new("libc6", "2.41-1"), new("bash", "5.2-1")],
            ToolsetPackages = [new("libc6", "2.41-2"), new("python3", "3.13")],
            ExtraPackages = [new("libc6", "2.41-3"), new("curl", "8.14")],
        };

        Assert.Equal(
            ["bash=5.2-1", "libc6=2.41-2", "python3=3.13"],
            l.FirstLayerPackages.Select(p => p.ToString()));
    }

    [Theory]
    [InlineData("bash")]
    [InlineData("=1.0")]
    [InlineData("bash=")]
    public void LockedPackageParse_RejectsTextThatIsNotNameEqualsVersion(string text) =>
        Assert.Throws<FormatException>(() => LockedPackage.Parse(text));

    [Fact]
    public void LockedPackageParse_SplitsAtTheFirstEquals() =>
        Assert.Equal(new LockedPackage("foo", "1:2=3"), LockedPackage.Parse("foo=1:2=3"));

    private const string SpecText = """
        name: demo
        base:
          components: [main, contrib]
        toolsets: [python]
        """;

    private static EnvironmentSpec Spec(string text) =>
        SpecLoader.Parse(text, "environment.yaml", Path.GetTempPath(), ToolsetCatalog.Default);

    private static EnvironmentLock LockFor(EnvironmentSpec spec) => Sample() with
    {
        Environment = spec.Name,
        SpecDigest = spec.Digest,
        Base = Sample().Base with { Suite = spec.Base.Suite, Components = spec.Base.Components, Mirror = spec.Base.Mirror },
    };

    [Fact]
    public void Matches_TheSpecItWasMadeFrom()
    {
        var spec = Spec(SpecText);

        Assert.True(LockFor(spec).Matches(spec));
    }

    [Fact]
    public void Matches_IsFalseAfterTheSpecTextChanges()
    {
        var l = LockFor(Spec(SpecText));

        var changed = Spec(SpecText + "\ndescription: edited\n");

        Assert.False(l.Matches(changed));
    }

    [Fact]
    public void Matches_IsFalseWhenTheBaseDiffers()
    {
        var spec = Spec(SpecText);
        var l = LockFor(spec) with { Base = LockFor(spec).Base with { Components = ["main"] } };

        Assert.False(l.Matches(spec));
    }
}
