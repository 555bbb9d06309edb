using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>The real <c>dsvm env diff</c> on two lock files (no engine needed), and its errors for a missing or damaged lock.</summary>
public sealed class EnvDiffCliTests : IDisposable
{
    private const int InvalidSpec = 3;
    private const int NotFound = 4;
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Lock(params string[] toolsets) =>
        "lockVersion: 1\nenvironment: demo\nspecDigest: sha256:" + new string('a', 64) + "\nbase:\n  distribution: debian\n  suite: trixie\n"
        + "  components: [main]\n  mirror: http://deb.debian.org/debian\n  architecture: amd64\n  rootfsDigest: sha256:" + new string('b', 64) + "\n"
        + "packages:\n  base:\n    - \"apt=3.0.3\"\n  toolsets:\n" + string.Concat(toolsets.Select(t => $"    - \"{t}\"\n")) + "  extra: []\n";

    private async Task<BufferedCommandResult> DsvmAsync(params string[] args) =>
        await Cli.Wrap("dotnet")
            .WithArguments([TestEnvironment.CliDll, .. args])
            .WithEnvironmentVariables(e => e.Set("DSVM_HOME", _dir.Path).Set("DOCKER_HOST", "unix:///nonexistent/dsvm-diff-test.sock"))
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync();

    [Fact]
    public async Task Diff_of_two_locks_lists_added_removed_upgraded_and_downgraded_packages_as_json_and_text()
    {
        var a = _dir.Write("a/environment.lock", Lock("bash=5.2.37-2+b9", "git=1:2.47.3-0+deb13u1", "old=1.0", "zlib1g=1:1.3.dfsg-3"));
        var b = _dir.Write("b/environment.lock", Lock("bash=5.2.37-2+b10", "git=1:2.47.3-0+deb13u1", "new=2.0~rc1-1", "zlib1g=1:1.2.13.dfsg-1"));

        var json = await DsvmAsync("env", "diff", a, Path.Combine(_dir.Path, "b"), "-o", "json");

        Assert.True(json.ExitCode == 0, json.StandardOutput + json.StandardError);
        var root = JsonDocument.Parse(json.StandardOutput).RootElement;
        Assert.Equal("lock", root.GetProperty("a").GetProperty("kind").GetString());
        Assert.Equal(b, root.GetProperty("b").GetProperty("name").GetString());
        var p = root.GetProperty("packages");
        Assert.Equal("new", p.GetProperty("added")[0].GetProperty("name").GetString());
        Assert.Equal("old", p.GetProperty("removed")[0].GetProperty("name").GetString());
        Assert.Equal("5.2.37-2+b10", p.GetProperty("upgraded")[0].GetProperty("to").GetString());
        Assert.Equal("zlib1g", p.GetProperty("downgraded")[0].GetProperty("name").GetString());
        Assert.Equal(2, p.GetProperty("unchanged").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("layers").ValueKind);

        var text = await DsvmAsync("env", "diff", a, b);

        Assert.Equal(0, text.ExitCode);
        Assert.Contains("packages: +1 −1 ~2 (1 added, 1 removed, 1 upgraded, 1 downgraded, 2 unchanged)", text.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_or_damaged_lock_is_one_line_naming_the_file()
    {
        var good = _dir.Write("a/environment.lock", Lock("bash=5.2.37-2+b9"));
        var damaged = _dir.Write("c/environment.lock", Lock("bash=5.2.37-2+b9").Replace("\"bash=5.2.37-2+b9\"", "\"bash\"", StringComparison.Ordinal));
        Directory.CreateDirectory(Path.Combine(_dir.Path, "empty"));

        var missing = await DsvmAsync("env", "diff", good, Path.Combine(_dir.Path, "empty"));
        var bad = await DsvmAsync("env", "diff", damaged, good);

        Assert.Equal(NotFound, missing.ExitCode);
        Assert.StartsWith($"error: {Path.Combine(_dir.Path, "empty", "environment.lock")}: no lock", missing.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(InvalidSpec, bad.ExitCode);
        Assert.StartsWith($"error: {damaged}:", bad.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("packages.toolsets[0]", bad.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", bad.StandardOutput + bad.StandardError, StringComparison.Ordinal);
    }
}
