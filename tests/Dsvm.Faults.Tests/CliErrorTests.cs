using CliWrap;
using CliWrap.Buffered;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real <c>dsvm</c> tool against an engine that is not there (a socket that does not exist: no engine is needed)
/// and with configuration typos: one line naming the engine or the key, no stack trace, the named exit code (issue 12).
/// </summary>
public sealed class CliErrorTests : IDisposable
{
    private const int NotReady = 5;
    private const int Usage = 2;
    private const string Socket = "unix:///nonexistent/dsvm-faults-test.sock";
    private readonly string _home = Path.Combine(Path.GetTempPath(), "dsvm-clierr-" + Guid.NewGuid().ToString("N")[..12]);

    public CliErrorTests() => Directory.CreateDirectory(_home);

    public void Dispose() => Directory.Delete(_home, recursive: true);

    private async Task<BufferedCommandResult> DsvmAsync(IReadOnlyDictionary<string, string?>? env, params string[] args) =>
        await Cli.Wrap("dotnet")
            .WithArguments([TestEnvironment.CliDll, .. args])
            .WithEnvironmentVariables(e =>
            {
                e.Set("DSVM_HOME", _home);
                e.Set("DOCKER_HOST", Socket);
                e.Set("DSVM_BACKENDS", null);
                e.Set("XDG_CONFIG_HOME", _home);
                e.Set("DSVM_HUB_URL", null);
                foreach (var (k, v) in env ?? new Dictionary<string, string?>())
                {
                    e.Set(k, v);
                }
            })
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync();

    private static string OneLine(BufferedCommandResult r)
    {
        var all = r.StandardOutput + r.StandardError;
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", all, StringComparison.Ordinal);
        var line = Assert.Single(all.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        return line;
    }

    [Theory]
    [InlineData("ls")]
    [InlineData("ls", "--local")]
    public async Task An_unreachable_engine_is_one_line_naming_its_endpoint(params string[] args)
    {
        var r = await DsvmAsync(null, args);
        var line = OneLine(r);
        Assert.Contains($"the Docker engine at {Socket} is not reachable", line, StringComparison.Ordinal);
        Assert.Contains("DOCKER_HOST", line, StringComparison.Ordinal);
        Assert.Equal(NotReady, r.ExitCode);
    }

    [Fact]
    public async Task Json_output_carries_the_error_kind()
    {
        var r = await DsvmAsync(null, "ls", "-o", "json");
        Assert.Equal(NotReady, r.ExitCode);
        Assert.Contains("\"error\": \"not-ready\"", r.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.StandardOutput + r.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hub_configuration_typos_are_one_line_naming_file_and_variable_before_the_engine_is_tried()
    {
        var file = Path.Combine(_home, "hub.json");
        await File.WriteAllTextAsync(file, """{"Hub": {"IdelTimeout": "00:01:00"}}""");
        var r = await DsvmAsync(new Dictionary<string, string?> { ["DSVM__Hub__MaxFailedLogin"] = "3" }, "hub", "serve", "--config", file);
        var line = OneLine(r);
        Assert.Contains($"unknown key Hub:IdelTimeout in {file} (did you mean 'Hub:IdleTimeout'?)", line, StringComparison.Ordinal);
        Assert.Contains("unknown key Hub:MaxFailedLogin from environment variable DSVM__Hub__MaxFailedLogin (did you mean 'Hub:MaxFailedLogins'?)", line, StringComparison.Ordinal);
        Assert.Equal(Usage, r.ExitCode);
    }
}
