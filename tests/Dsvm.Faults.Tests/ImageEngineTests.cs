using CliWrap;
using CliWrap.Buffered;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// Issue 10 part 6, one engine: with a <c>backends.yaml</c> whose docker backend is another engine (the fault engine,
/// named only there, no <c>DOCKER_HOST</c>), the image commands and <c>dsvm up</c> look for images on that engine,
/// where the workspace starts. Before, they asked this machine's engine: an image only the backend's engine had was
/// "not in the local engine", and an image only this machine had passed the check and then failed to start.
/// </summary>
[Trait("Requires", "Docker")]
[Collection(FaultEngineCollection.Name)]
public sealed class ImageEngineTests(FaultEngine engine) : IAsyncLifetime
{
    private readonly FaultWorkspace _ws = new("imgeng", FaultEngine.Socket);
    private readonly string _only = $"dsvm-test/only-on-the-backend:{Guid.NewGuid().ToString("N")[..8]}";

    public Task InitializeAsync() => FaultEngine.PrepareHomeAsync(_ws.Home);

    public async Task DisposeAsync()
    {
        await engine.StartAsync();
        await _ws.DockerAsync("rmi", _only);
        await _ws.CleanUpAsync();
    }

    private Task<Result> DsvmAsync(params string[] args) =>
        FaultWorkspace.RunCliAsync(e => e
            .Set("DSVM_HOME", _ws.Home)
            .Set("DOCKER_HOST", null)
            .Set("DSVM_BACKENDS", Path.Combine(_ws.Home, "backends.yaml"))
            .Set("DSVM_HUB_URL", null)
            .Set("XDG_CONFIG_HOME", Path.Combine(_ws.Home, "config"))
            .Set("DSVM_START_TIMEOUT", "60"), null, args);

    [DockerFact]
    public async Task The_image_commands_and_up_use_the_engine_of_the_default_docker_backend()
    {
        // An image that only the backend's engine has.
        var tagged = await _ws.DockerAsync("tag", "dsvm/minimal:latest", _only);
        Assert.True(tagged.ExitCode == 0, tagged.StandardError);
        var local = await Cli.Wrap("docker").WithArguments(["image", "inspect", _only]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        Assert.NotEqual(0, local.ExitCode);

        var inspect = await DsvmAsync("env", "inspect", _only);
        Assert.True(inspect.ExitCode == 0, $"dsvm env inspect on the backend's engine: {inspect}");
        Assert.Contains("minimal", inspect.Stdout, StringComparison.Ordinal);

        // `up` checks the image where it starts the workspace, and starts it there.
        var up = await DsvmAsync("up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "--local", "-o", "json");
        Assert.True(up.ExitCode == 0, $"dsvm up: {up}");
        Assert.Equal((1, 1), await _ws.ContainersAsync());
        var rm = await DsvmAsync("rm", _ws.Name, "--delete-home", "--local");
        Assert.True(rm.ExitCode == 0, $"dsvm rm: {rm}");
    }
}
