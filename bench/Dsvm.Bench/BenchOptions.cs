using System.Globalization;

namespace Dsvm.Bench;

/// <summary>Command-line options of the benchmark (parsed by hand: a handful of flags).</summary>
internal sealed record BenchOptions
{
    public const string DefaultHome = "/var/tmp/opendsvm-bench";

    public const string Usage = """
        OpenDSVM benchmark: prints tables (or JSON); it measures, it never asserts timings.

        usage: bench/run.sh [options]
          --suite build|workspaces|hub|peers|starts|swarm|kubernetes|vm|compute|all
                                         which suite to run (default: all = build and workspaces; hub, peers,
                                         swarm, kubernetes and vm are opt-in: they take minutes; swarm needs
                                         root, kubernetes a cluster (bench/run.sh starts the lab), vm qemu;
                                         peers compares with configurable-http-proxy and JupyterHub; starts
                                         compares starts with the docker run floor)
          --envs minimal,datascience     environments of the build suite (default: both)
          --runs N                       sequential workspace starts (default: 20)
          --concurrent N                 workspaces started at once (default: 20)
          --home DIR                     the benchmark's own DSVM data folder (default: /var/tmp/opendsvm-bench)
          --output table|json            output format (default: table); progress always goes to stderr
          --cli PATH                     dsvm.dll for the CLI row (default: src/Dsvm.Cli/bin/Release/net10.0/dsvm.dll)
          --skip-cold                    leave out the cold (--no-cache) builds, which take minutes
          --duration SECONDS             hub suite: length of each wrk load run (default: 10)
          --concurrent-starts N          hub suite: workspaces started at once through the API (default: 50)
          --skip-docker                  hub suite: leave out the concurrent starts on the Docker engine
          --swarm-workspaces N           swarm suite: workspaces started on each side (default: 30)
          --swarm-parallel N             swarm suite: starts at a time (default: 6)
          --k8s-workspaces N             kubernetes suite: workspaces started at once on each side (default: 30)
          --rounds N                     peers, starts and kubernetes suites: interleaved rounds (default: 3;
                                         kubernetes: give 1 for one of each)
          --class N[,N]                  starts suite: class sizes started at once (default: 10,30)
          --peer-duration SECONDS        peers suite: length of each wrk run (default: 5)
          --quick                        peers suite: one round of 2 s runs
          --chp PATH                     peers suite: the configurable-http-proxy to compare with
          --image IMAGE                  compute suite: the image measured (default: dsvm/datascience:latest)
          --baseline netlib|previous|IMAGE
                                         compute suite: what it is compared with (default netlib: the same
                                         image with the reference BLAS; previous: the previous build here)
          --help                         this text
        """;

    public bool RunBuild { get; init; } = true;
    public bool RunWorkspaces { get; init; } = true;
    public bool RunHub { get; init; }
    public bool RunSwarm { get; init; }
    public bool RunPeers { get; init; }
    public bool RunCompute { get; init; }
    public bool RunStarts { get; init; }
    public bool RunKubernetes { get; init; }
    public int KubernetesWorkspaces { get; init; } = 30;
    public IReadOnlyList<int> ClassSizes { get; init; } = [10, 30];
    public string? ComputeImage { get; init; }
    public string? BaselineImage { get; init; }
    public int Rounds { get; init; } = 3;
    public int PeerDuration { get; init; } = 5;
    public bool Quick { get; init; }
    public string? ChpPath { get; init; }
    public int SwarmWorkspaces { get; init; } = 30;
    public int SwarmParallel { get; init; } = 6;
    public bool RunVm { get; init; }
    public int Duration { get; init; } = 10;
    public int ConcurrentStarts { get; init; } = 50;
    public bool SkipDocker { get; init; }
    public IReadOnlyList<string> Envs { get; init; } = ["minimal", "datascience"];
    public int Runs { get; init; } = 20;
    public int Concurrent { get; init; } = 20;
    public string Home { get; init; } = DefaultHome;
    public bool Json { get; init; }
    public bool SkipCold { get; init; }
    public string? CliDll { get; init; }
    public bool Help { get; init; }

    /// <summary>Parses <c>--name value</c> and <c>--name=value</c>; throws <see cref="ArgumentException"/> with a clear message.</summary>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var o = new BenchOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }

            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                if (i + 1 >= args.Count)
                {
                    throw new ArgumentException($"{arg} needs a value");
                }

                return args[++i];
            }

            o = arg switch
            {
                "--suite" => Value() switch
                {
                    "build" => o with { RunBuild = true, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false },
                    "workspaces" => o with { RunBuild = false, RunWorkspaces = true, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false },
                    "hub" => o with { RunBuild = false, RunWorkspaces = false, RunHub = true, RunSwarm = false, RunVm = false, RunPeers = false },
                    "swarm" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = true, RunVm = false, RunPeers = false },
                    "peers" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = true },
                    "vm" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = true, RunPeers = false },
                    "starts" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false, RunStarts = true },
                    "kubernetes" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false, RunKubernetes = true },
                    "compute" => o with { RunBuild = false, RunWorkspaces = false, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false, RunCompute = true },
                    "all" => o with { RunBuild = true, RunWorkspaces = true, RunHub = false, RunSwarm = false, RunVm = false, RunPeers = false },
                    var v => throw new ArgumentException($"--suite must be build, workspaces, hub, peers, starts, swarm, kubernetes, vm, compute or all (not '{v}')"),
                },
                "--envs" => o with { Envs = ParseEnvs(Value()) },
                "--runs" => o with { Runs = PositiveInt(arg, Value()) },
                "--concurrent" => o with { Concurrent = PositiveInt(arg, Value()) },
                "--home" => o with { Home = Path.GetFullPath(Value()) },
                "--output" or "-o" => Value() switch
                {
                    "json" => o with { Json = true },
                    "table" or "text" => o with { Json = false },
                    var v => throw new ArgumentException($"--output must be table or json (not '{v}')"),
                },
                "--cli" => o with { CliDll = Path.GetFullPath(Value()) },
                "--skip-cold" => o with { SkipCold = true },
                "--duration" => o with { Duration = PositiveInt(arg, Value()) },
                "--concurrent-starts" => o with { ConcurrentStarts = PositiveInt(arg, Value()) },
                "--skip-docker" => o with { SkipDocker = true },
                "--swarm-workspaces" => o with { SwarmWorkspaces = PositiveInt(arg, Value()) },
                "--swarm-parallel" => o with { SwarmParallel = PositiveInt(arg, Value()) },
                "--k8s-workspaces" => o with { KubernetesWorkspaces = PositiveInt(arg, Value()) },
                "--rounds" => o with { Rounds = PositiveInt(arg, Value()) },
                "--class" => o with { ClassSizes = [.. Value().Split(',', StringSplitOptions.TrimEntries).Select(v => PositiveInt(arg, v))] },
                "--peer-duration" => o with { PeerDuration = PositiveInt(arg, Value()) },
                "--quick" => o with { Quick = true },
                "--chp" => o with { ChpPath = Path.GetFullPath(Value()) },
                "--image" => o with { ComputeImage = Value() },
                "--baseline" => o with { BaselineImage = Value() },
                "--help" or "-h" => o with { Help = true },
                _ => throw new ArgumentException($"unknown argument '{args[i]}' (see --help)"),
            };
        }

        return o;
    }

    private static List<string> ParseEnvs(string value)
    {
        var envs = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();
        if (envs.Count == 0)
        {
            throw new ArgumentException("--envs needs at least one environment name");
        }

        foreach (var env in envs)
        {
            if (env.Contains('/', StringComparison.Ordinal) || env.Contains("..", StringComparison.Ordinal))
            {
                throw new ArgumentException($"--envs takes curated environment names (folders of environments/), not paths: '{env}'");
            }
        }

        return envs;
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{name} must be a positive whole number (not '{value}')");
}
