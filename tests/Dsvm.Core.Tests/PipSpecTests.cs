using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Tests;

/// <summary>The spec's <c>pip:</c> section and the lock's: strict, located errors; a round trip that keeps every pin.</summary>
public sealed class PipSpecTests
{
    private const string SpecFile = "envs/demo/environment.yaml";
    private const string LockFile = "envs/demo/environment.lock";
    private static readonly string NoDirectory = Path.Combine(Path.GetTempPath(), "dsvm-tests-no-such-folder");

    private static EnvironmentSpec Parse(string yaml) => SpecLoader.Parse(yaml, SpecFile, NoDirectory, ToolsetCatalog.Default);

    private static IReadOnlyList<SpecError> Errors(string yaml) => Assert.Throws<SpecValidationException>(() => Parse(yaml)).Errors;

    private const string Head = "name: demo\ntoolsets: [python]\n";

    [Fact]
    public void PipSection_ParsesIndexAndRequirements_PyPIByDefault()
    {
        var spec = Parse(Head + "pip:\n  requirements:\n    - polars>=1.0,<2\n    - duckdb == 1.1.3\n    - transformers[torch]\n");

        Assert.Equal(PipSpec.DefaultIndex, spec.Pip!.Index);
        Assert.Equal(["polars>=1.0,<2", "duckdb == 1.1.3", "transformers[torch]"], spec.Pip.Requirements);
        Assert.Null(Parse(Head).Pip);
        Assert.Equal("http://127.0.0.1:8080/simple/", Parse(Head + "pip:\n  index: http://127.0.0.1:8080/simple/\n  requirements: [a]\n").Pip!.Index);
    }

    [Theory]
    [InlineData("    - --index-url=http://evil/\n", 5, 7, "pip.requirements[0]", "not a valid pip requirement")]
    [InlineData("    - -e .\n", 5, 7, "pip.requirements[0]", "not a valid pip requirement")]
    [InlineData("    - foo @ https://x/foo.whl\n", 5, 7, "pip.requirements[0]", "not a valid pip requirement")]
    [InlineData("    - foo; python_version<'3'\n", 5, 7, "pip.requirements[0]", "not a valid pip requirement")]
    [InlineData("    - ok\n    - [a, b]\n", 6, 7, "pip.requirements[1]", "expected a single value")]
    [InlineData("    - Foo_Bar\n    - foo.bar==1\n", 6, 7, "pip.requirements[1]", "'foo-bar' is listed twice")]
    public void BadRequirement_IsLocatedAtItsLineAndColumn(string items, int line, int column, string path, string message)
    {
        var e = Assert.Single(Errors(Head + "pip:\n  requirements:\n" + items));

        Assert.Equal((SpecFile, line, column, path), (e.File, e.Line, e.Column, e.Path));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pip:\n  index: ftp://x/simple\n  requirements: [a]\n", 4, 10, "pip.index", "not an http(s) URL")]
    [InlineData("pip:\n  index: https://user:secret@repo.example/simple\n  requirements: [a]\n", 4, 10, "pip.index", "credentials do not belong")]
    [InlineData("pip:\n  index: https://pypi.org/simple\n", 4, 3, "pip.requirements", "required key 'requirements' is missing")]
    [InlineData("pip:\n  requirements: []\n", 4, 17, "pip.requirements", "at least one requirement")]
    [InlineData("pip:\n  requirements: [a]\n  indx: x\n", 5, 3, "pip.indx", "unknown key 'indx' (did you mean 'index'?)")]
    [InlineData("pip: [a]\n", 3, 6, "pip", "expected a mapping")]
    public void BadPipSection_IsLocated(string section, int line, int column, string path, string message)
    {
        var e = Assert.Single(Errors(Head + section));

        Assert.Equal((line, column, path), (e.Line, e.Column, e.Path));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void PipWithoutPython3PipInTheImage_IsAnErrorThatSaysWhatToAdd()
    {
        var e = Assert.Single(Errors("name: demo\npip:\n  requirements: [a]\n"));

        Assert.Equal((3, 3, "pip"), (e.Line, e.Column, e.Path));
        Assert.Contains("python3-pip", e.Message, StringComparison.Ordinal);
        Assert.NotNull(Parse("name: demo\npackages: [python3-pip]\npip:\n  requirements: [a]\n").Pip);
    }

    [Theory]
    [InlineData("http://127.0.0.1:1/simple", true)]
    [InlineData("http://localhost:1/simple", true)]
    [InlineData("http://[::1]:1/simple", true)]
    [InlineData("http://127.3.2.1/simple", true)]
    [InlineData("https://pypi.org/simple", false)]
    [InlineData("http://172.17.0.1:8080/simple", false)]
    public void LoopbackIndex_IsRecognised(string index, bool loopback) => Assert.Equal(loopback, PipSpec.IsLoopback(index));

    private static EnvironmentLock SampleLock(PipLock? pip) => new()
    {
        Environment = "demo",
        SpecDigest = "sha256:" + new string('a', 64),
        Base = new BaseLock
        {
            Distribution = "debian", Suite = "trixie", Components = ["main"], Mirror = "http://deb.debian.org/debian",
            RootfsDigest = "sha256:" + new string('b', 64),
        },
        BasePackages = [new("bash", "5.2.37-2+b10")],
        ToolsetPackages = [new("python3-pip", "25.1.1+dfsg-1")],
        ExtraPackages = [],
        Pip = pip,
    };

    private static readonly PipLock Pins = new()
    {
        Index = "https://pypi.org/simple",
        Packages = [new("dsvm-b", "1.0", new string('c', 64)), new("dsvm-a", "2.0.post1", new string('d', 64))],
    };

    [Fact]
    public void LockWithPip_RoundTripsSortedAtFormat2_AndWithoutPipStaysFormat1()
    {
        var text = SampleLock(Pins).ToText();
        var parsed = EnvironmentLock.Parse(text, LockFile);

        Assert.Contains("lockVersion: 2\n", text, StringComparison.Ordinal);
        Assert.Contains("pip:\n  index: \"https://pypi.org/simple\"\n  packages:\n    - \"dsvm-a==2.0.post1 sha256:" + new string('d', 64) + "\"\n", text, StringComparison.Ordinal);
        Assert.Equal(Pins.Index, parsed.Pip!.Index);
        Assert.Equal(Pins.Packages.OrderBy(p => p.Name, StringComparer.Ordinal), parsed.Pip.Packages);
        Assert.Equal(SampleLock(Pins).Digest, parsed.Digest);
        Assert.NotEqual(SampleLock(null).Digest, parsed.Digest);
        Assert.Contains("lockVersion: 1\n", SampleLock(null).ToText(), StringComparison.Ordinal);
        Assert.DoesNotContain("pip:", SampleLock(null).ToText(), StringComparison.Ordinal);
        Assert.Null(EnvironmentLock.Parse(SampleLock(null).ToText(), LockFile).Pip);
    }

    [Fact]
    public void RequirementsFile_PinsEveryFileByHashBehindTheIndex()
    {
        Assert.Equal(
            "# generated from environment.lock by OpenDSVM\n--index-url https://pypi.org/simple\n"
            + $"dsvm-b==1.0 --hash=sha256:{new string('c', 64)}\ndsvm-a==2.0.post1 --hash=sha256:{new string('d', 64)}\n",
            Pins.RequirementsFile());
    }

    [Theory]
    [InlineData("    - \"dsvm-a==1.0\"\n", "pip.packages[0]", "not 'name==version sha256:")]
    [InlineData("    - \"dsvm-a==1.0 sha256:abc\"\n", "pip.packages[0]", "not 'name==version sha256:")]
    [InlineData("    - \"--index-url==1 sha256:" + "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" + "\"\n", "pip.packages[0]", "not 'name==version")]
    [InlineData("    - \"a==1 sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"\n    - \"a==2 sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"\n", "pip.packages[1]", "pinned twice")]
    public void DamagedPipPins_AreLocated(string items, string path, string message)
    {
        var text = SampleLock(null).ToText().Replace("lockVersion: 1", "lockVersion: 2", StringComparison.Ordinal)
            + "pip:\n  index: \"https://pypi.org/simple\"\n  packages:\n" + items;
        var lines = text.Split('\n');
        var e = Assert.Single(Assert.Throws<SpecValidationException>(() => EnvironmentLock.Parse(text, LockFile)).Errors);

        Assert.Equal(path, e.Path);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("    - ", lines[e.Line - 1], StringComparison.Ordinal);
        Assert.Equal(7, e.Column);
    }

    [Fact]
    public void LockIndexWithCredentials_IsRefused_AndVersionMustMatchTheSections()
    {
        var withCredentials = SampleLock(Pins).ToText().Replace("https://pypi.org/simple", "https://u:p@pypi.org/simple", StringComparison.Ordinal);
        Assert.Equal("pip.index", Assert.Single(Assert.Throws<SpecValidationException>(() => EnvironmentLock.Parse(withCredentials, LockFile)).Errors).Path);

        var pipAtVersion1 = SampleLock(Pins).ToText().Replace("lockVersion: 2", "lockVersion: 1", StringComparison.Ordinal);
        Assert.Equal("lockVersion", Assert.Single(Assert.Throws<SpecValidationException>(() => EnvironmentLock.Parse(pipAtVersion1, LockFile)).Errors).Path);
    }
}
