using Dsvm.Bench;
using Dsvm.Core;
using Dsvm.Images;
using Spectre.Console;

// OpenDSVM benchmark: build and workspace timings as tables (or JSON). It measures and reports; it never fails on
// a timing. It works in its own DSVM data folder on copies of the curated environments.
// Child processes of the peers suite (the hub and the static upstream, each in its own process).
switch (args)
{
    case ["serve-static", var port]:
        return await PeersSuite.ServeStaticAsync(int.Parse(port, System.Globalization.CultureInfo.InvariantCulture));
    case ["serve-peer-hub", var dir, var port, var statik, var jupyter]:
        return await PeersSuite.ServeHubAsync(dir, int.Parse(port, System.Globalization.CultureInfo.InvariantCulture), statik, jupyter);
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (ArgumentException ex)
{
    await Console.Error.WriteLineAsync($"error: {ex.Message}");
    return 2;
}

if (options.Help)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // The first Ctrl-C stops the measurements and lets the clean-up run; a second one ends the process.
    if (!cts.IsCancellationRequested)
    {
        e.Cancel = true;
        Log.Warn("stopping: cleaning up what the benchmark made (Ctrl-C again to quit at once)");
        cts.Cancel();
    }
};

try
{
    var home = new BenchHome(options.Home, BenchHome.FindRepoRoot());
    if (options.RunPeers)
    {
        Log.Say($"peers suite: {(options.Quick ? "quick, 1 round" : $"{options.Rounds} rounds of {options.PeerDuration} s runs")}");
        return await new PeersSuite(options, home).RunAsync(cts.Token);
    }

    var images = new ImageServices(home.Paths);
    if (options.RunStarts)
    {
        Log.Say($"starts suite: {options.Rounds} rounds; one start, and {string.Join(", ", options.ClassSizes)} at once, each beside the docker run floor");
        using var starts = new StartsSuite(options, home, images);
        return await starts.RunAsync(cts.Token);
    }

    if (options.RunKubernetes)
    {
        Log.Say($"kubernetes suite: {options.Rounds} round(s) of {options.KubernetesWorkspaces} workspaces at once through the hub, on the lab cluster and on this host's engine");
        using var kubernetes = new KubernetesSuite(options, home, images);
        return await kubernetes.RunAsync(cts.Token);
    }

    if (options.RunCompute)
    {
        await images.Docker.EnsureEngineAsync(cts.Token);
        return await new ComputeSuite(options, home, images).RunAsync(cts.Token);
    }

    var needsDocker = options.RunBuild || options.RunWorkspaces || options.RunSwarm || options.RunVm || (options.RunHub && !options.SkipDocker);
    if (needsDocker)
    {
        await images.Docker.EnsureEngineAsync(cts.Token);
    }

    var started = DateTimeOffset.UtcNow;
    var host = await HostInfoAsync(images.Docker, cts.Token);

    BuildSuiteResult? build = null;
    WorkspaceSuiteResult? workspaces = null;
    HubSuiteResult? hub = null;
    SwarmSuiteResult? swarm = null;
    VmSuiteResult? vm = null;
    if (options.RunBuild)
    {
        Log.Say($"build suite: {string.Join(", ", options.Envs)}{(options.SkipCold ? " (cold builds skipped)" : "")}");
        build = await new BuildSuite(options, home, images).RunAsync(cts.Token);
    }

    if (options.RunWorkspaces)
    {
        Log.Say($"workspace suite: {options.Runs} sequential, {options.Concurrent} at once");
        workspaces = await new WorkspaceSuite(options, home, images).RunAsync(cts.Token);
    }

    if (options.RunHub)
    {
        Log.Say($"hub suite: wrk {options.Duration} s per target{(options.SkipDocker ? ", Docker starts skipped" : $", {options.ConcurrentStarts} concurrent starts on Docker")}");
        hub = await new HubSuite(options, home, needsDocker ? images : null).RunAsync(cts.Token);
    }

    if (options.RunSwarm)
    {
        Log.Say($"swarm suite: {options.SwarmWorkspaces} workspaces on one engine, then on a 3-node swarm, {options.SwarmParallel} at a time");
        swarm = await new SwarmSuite(options, home, images).RunAsync(cts.Token);
    }

    if (options.RunVm)
    {
        Log.Say("vm suite: export and boot-to-Jupyter of minimal under qemu");
        vm = await new VmSuite(options, home, images).RunAsync(cts.Token);
    }

    var report = new BenchReport(started, host, home.Root, build, workspaces, hub, swarm, vm);
    if (options.Json)
    {
        Report.WriteJson(report);
    }
    else
    {
        Report.WriteTables(report);
    }

    return 0;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    await Console.Error.WriteLineAsync("stopped");
    return 130;
}
catch (DsvmException ex)
{
    AnsiConsole.Console.MarkupLine($"[red]error:[/] {Markup.Escape(ex.Message)}");
    return 1;
}

static async Task<HostInfo> HostInfoAsync(DockerCli docker, CancellationToken ct)
{
    var info = await docker.RunAsync(["info", "--format", "{{.ServerVersion}} {{.CgroupDriver}}/v{{.CgroupVersion}}"], ct);
    var parts = info.Ok ? info.Stdout.Trim().Split(' ', 2) : [];
    return new HostInfo(
        Environment.ProcessorCount,
        Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024), 1),
        parts.Length > 0 ? parts[0] : null,
        parts.Length > 1 ? "cgroup " + parts[1] : null);
}
