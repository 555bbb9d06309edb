using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Testing;

namespace Dsvm.EndToEnd.Tests;

/// <summary>Runs the real <c>dsvm</c> tool as a process, on the shared test home.</summary>
public static class Dsvm
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;

        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    public static Task<Result> RunAsync(params string[] args) => RunWithAsync(new Dictionary<string, string>(), args);

    /// <summary>Runs the tool with extra environment variables (e.g. DSVM_BACKENDS).</summary>
    public static async Task<Result> RunWithAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        Assert.True(File.Exists(TestEnvironment.CliDll), $"build the CLI first: {TestEnvironment.CliDll} is missing");
        var r = await Cli.Wrap("dotnet")
            .WithArguments([TestEnvironment.CliDll, .. args])
            .WithEnvironmentVariables(e =>
            {
                e.Set("DSVM_HOME", TestEnvironment.Home);
                foreach (var (k, v) in environment)
                {
                    e.Set(k, v);
                }
            })
            .WithWorkingDirectory(TestEnvironment.RepoRoot)
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync();
        return new Result(r.ExitCode, r.StandardOutput, r.StandardError);
    }

    public static async Task<Result> OkAsync(params string[] args)
    {
        var r = await RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)} failed: {r}");
        return r;
    }
}
