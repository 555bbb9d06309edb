using CliWrap;
using CliWrap.Buffered;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// One standalone Docker engine of the tests' own (tests/faults/fault-engine.sh: network namespace <c>dsvm-fault</c>,
/// veth 10.215.0.1 ↔ 10.215.0.2, dockerd on <see cref="Socket"/>), with the minimal workspace image copied in from
/// the host engine, so a test can stop and start the engine under a workspace. Built once for the tests of the
/// collection (after tearing down what a killed run left) and removed at the end. Under test.sh
/// (<c>DSVM_REQUIRE_DOCKER=1</c>) an engine that cannot start fails the tests; it is never skipped there.
/// </summary>
public sealed class FaultEngine : IAsyncLifetime
{
    public const string Socket = "unix:///run/dsvm-fault/docker.sock";

    /// <summary>Where workspaces publish Jupyter: the namespace's end of the veth, which the host reaches.</summary>
    public const string Address = "10.215.0.2";

    private static string Script => Path.Combine(TestEnvironment.RepoRoot, "tests", "faults", "fault-engine.sh");

    /// <summary><c>DSVM_FAULT_ENGINE_REUSE=1</c> keeps a running fault engine between runs (iterating on tests only).</summary>
    private static bool Reuse => Environment.GetEnvironmentVariable("DSVM_FAULT_ENGINE_REUSE") == "1";

    private bool _up;

    public async Task InitializeAsync()
    {
        if (TestEnvironment.DockerSkipReason is not null)
        {
            return;
        }

        if (Reuse && (await Cli.Wrap("docker").WithArguments(["-H", Socket, "info"]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync()).ExitCode == 0)
        {
            _up = true;
            return;
        }

        // The image `dsvm up --env minimal` finds (built once into the shared cache) and the base the build checks for.
        var (dir, record) = await BuiltEnvironment.GetAsync("minimal");
        var spec = BuiltEnvironment.Services.LoadSpec(dir);
        var bases = await BuiltEnvironment.Services.Bases.FindAsync(spec.Base.CacheKey, CancellationToken.None);
        await RunAsync(["up", record.Image, .. bases.Select(b => b.Image)]);
        // The hub offers an environment by its `latest` tag (what `dsvm env build` tags last).
        var tagged = await Cli.Wrap("docker").WithArguments(["-H", Socket, "tag", record.Image, $"dsvm/minimal:latest"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        if (tagged.ExitCode != 0)
        {
            throw new InvalidOperationException($"tagging dsvm/minimal:latest in the fault engine failed: {tagged.StandardError.Trim()}");
        }

        _up = true;
    }

    public async Task DisposeAsync()
    {
        if (TestEnvironment.DockerSkipReason is null && !Reuse)
        {
            await RunAsync(["down"]);
        }
    }

    /// <summary>
    /// Gives a test's DSVM home the shared build records, so <c>dsvm up --env minimal</c> on the fault engine finds the
    /// image copied in as built (the engine has no build cache: a rebuild there would go to the mirror).
    /// </summary>
    /// <summary>
    /// A test's DSVM home set up for the fault engine: the shared build records and a <c>backends.yaml</c> whose
    /// docker backend is the fault engine, publishing on its address. Returns the <c>backends.yaml</c> path.
    /// </summary>
    /// <param name="requestTimeout">The backend's <c>request-timeout</c>, when not the default.</param>
    public static async Task<string> PrepareHomeAsync(string home, string? requestTimeout = null)
    {
        SeedBuildRecords(home);
        var backends = Path.Combine(home, "backends.yaml");
        await File.WriteAllTextAsync(backends, $"""
            default: docker
            backends:
              docker:
                endpoint: {Socket}
                bind-address: {Address}

            """ + (requestTimeout is null ? "" : $"    request-timeout: {requestTimeout}\n"));
        return backends;
    }

    private static void SeedBuildRecords(string home)
    {
        var source = Path.Combine(TestEnvironment.Paths.Builds, "minimal");
        var target = Path.Combine(home, "data", "builds", "minimal");
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }
    }

    /// <summary>SIGTERM, as <c>systemctl stop docker</c>: the engine stops its containers, then exits.</summary>
    public Task StopAsync() => ControlAsync("stop");

    /// <summary>SIGKILL: the engine dies at once; its containers run on, unmanaged, until it is back.</summary>
    public Task KillAsync() => ControlAsync("kill");

    /// <summary>
    /// SIGSTOP: the engine hangs. The kernel still accepts connections on its socket, no request is answered; its
    /// containers run on. <see cref="ThawAsync"/> or <see cref="StartAsync"/> (every test's clean-up) ends it.
    /// </summary>
    public Task FreezeAsync() => ControlAsync("freeze");

    /// <summary>SIGCONT: a frozen engine answers again.</summary>
    public Task ThawAsync() => ControlAsync("thaw");

    /// <summary>The engine back on the same data (a frozen one thawed).</summary>
    public Task StartAsync() => ControlAsync("start");

    private Task ControlAsync(string verb) =>
        _up ? RunAsync([verb]) : throw new InvalidOperationException("the fault engine was not set up (see the collection fixture's error)");

    private static async Task RunAsync(string[] args)
    {
        var r = await Cli.Wrap("bash").WithArguments([Script, .. args]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"fault-engine.sh {string.Join(' ', args)} failed ({r.ExitCode}): {r.StandardError.Trim()}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class FaultEngineCollection : ICollectionFixture<FaultEngine>
{
    public const string Name = "fault engine";
}
