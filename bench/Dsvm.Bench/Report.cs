using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace Dsvm.Bench;

internal sealed record HostInfo(int Cpus, double MemoryGiB, string? DockerVersion, string? CgroupDriver);

/// <summary>One measured build. <see cref="Seconds"/> is null when the scenario did not run (see the note).</summary>
internal sealed record BuildRow(string Environment, string Scenario, double? Seconds, string Cache, long? SizeBytes, string? Note = null);

/// <summary>A goal and whether the measurement meets it (null: not measured).</summary>
internal sealed record GoalRow(string Goal, string Measured, bool? Met);

internal sealed record BuildSuiteResult(List<BuildRow> Rows, List<GoalRow> Goals, List<string> Notes);

/// <summary>A timing distribution in seconds.</summary>
internal sealed record TimingRow(string Scenario, Summary? Seconds, int Failures, string? Note = null);

/// <summary>Memory of idle workspaces in MiB.</summary>
internal sealed record MemoryRow(string Source, [property: JsonPropertyName("mib")] Summary? MiB, string? Note = null);

/// <summary>A published start time of another system, for comparison (not measured here).</summary>
internal sealed record PublishedRow(string System, string StartTime);

internal sealed record WorkspaceSuiteResult(
    List<TimingRow> Timings, List<MemoryRow> Memory, List<GoalRow> Goals, List<PublishedRow> Published, List<string> Notes);

/// <summary>One load run: requests/s and latency percentiles in milliseconds.</summary>
internal sealed record LoadRow(string Target, string Tool, long? Requests, double? RequestsPerSecond, double? P50Ms, double? P90Ms, double? P99Ms, long Errors, string? Note = null);

/// <summary>WebSocket echo round trips in milliseconds.</summary>
internal sealed record RttRow(string Path, int Count, double? P50Ms, double? P95Ms, double? P99Ms, double? MaxMs, string? Note = null);

/// <summary>The benchmark process's managed heap and working set at one stage of the hub suite.</summary>
internal sealed record HubMemoryRow(string Stage, [property: JsonPropertyName("managedMib")] double ManagedMiB, [property: JsonPropertyName("workingSetMib")] double WorkingSetMiB, string? Note = null);

/// <summary>Concurrent starts through the hub API: the wall time until all ran, and each one's time (seconds).</summary>
internal sealed record StartRow(string Scenario, int Count, int MaxConcurrentStarts, double? AllRunningSeconds, Summary? Each, int Throttled, int Failures, string? Note = null);

internal sealed record HubSuiteResult(
    List<LoadRow> Load, List<RttRow> WebSockets, List<HubMemoryRow> Memory, List<StartRow> Starts, List<GoalRow> Goals, List<PublishedRow> Published, List<string> Notes);

internal sealed record BenchReport(DateTimeOffset StartedAt, HostInfo Host, string Home, BuildSuiteResult? Build, WorkspaceSuiteResult? Workspaces, HubSuiteResult? Hub = null, SwarmSuiteResult? Swarm = null, VmSuiteResult? Vm = null);

/// <summary>Tables on stdout (Spectre.Console), or the whole report as JSON.</summary>
internal static class Report
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void WriteJson(BenchReport report) => Console.Out.WriteLine(JsonSerializer.Serialize(report, Json));

    public static void WriteTables(BenchReport report)
    {
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected)
        {
            // Files and pipes get the full width instead of Spectre's 80-column default.
            console.Profile.Width = 180;
        }

        console.MarkupLine($"[bold]OpenDSVM benchmark[/] {report.StartedAt:yyyy-MM-dd HH:mm} UTC: host {report.Host.Cpus} CPUs, "
            + $"{report.Host.MemoryGiB:0.#} GiB, Docker {Markup.Escape(report.Host.DockerVersion ?? "?")} ({Markup.Escape(report.Host.CgroupDriver ?? "?")}); "
            + $"home {Markup.Escape(report.Home)}");
        if (report.Build is { } build)
        {
            WriteBuild(console, build);
        }

        if (report.Workspaces is { } ws)
        {
            WriteWorkspaces(console, ws);
        }

        if (report.Hub is { } hub)
        {
            WriteHub(console, hub);
        }

        if (report.Swarm is { } swarm)
        {
            WriteSwarm(console, swarm);
        }

        if (report.Vm is { } vm)
        {
            WriteVm(console, vm);
        }
    }

    private static void WriteSwarm(IAnsiConsole console, SwarmSuiteResult swarm)
    {
        var t = new Table().Title("[bold]workspace starts: one engine vs a 3-node swarm[/] (seconds)").Border(TableBorder.Rounded)
            .AddColumn("scenario").AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("p50").RightAligned())
            .AddColumn(new TableColumn("p95").RightAligned()).AddColumn(new TableColumn("max").RightAligned())
            .AddColumn(new TableColumn("failed").RightAligned()).AddColumn("note");
        foreach (var r in swarm.Timings)
        {
            t.AddRow(Markup.Escape(r.Scenario),
                r.Seconds is { } s ? s.Count.ToString(CultureInfo.InvariantCulture) : "[grey]-[/]",
                r.Seconds is { } a ? Seconds(a.P50) : "[grey]-[/]",
                r.Seconds is { } b ? Seconds(b.P95) : "[grey]-[/]",
                r.Seconds is { } c ? Seconds(c.Max) : "[grey]-[/]",
                r.Failures == 0 ? "0" : $"[red]{r.Failures}[/]",
                r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
        }

        console.Write(t);
        foreach (var n in swarm.Notes)
        {
            console.MarkupLine($"[grey]note: {Markup.Escape(n)}[/]");
        }
    }

    private static void WriteVm(IAnsiConsole console, VmSuiteResult vm)
    {
        var table = new Table().Border(TableBorder.Simple).Title($"VM disks and the qemu backend ({Markup.Escape(vm.Accelerator)})")
            .AddColumns("step", "seconds", "detail", "note");
        foreach (var r in vm.Rows)
        {
            table.AddRow(Markup.Escape(r.Step), r.Seconds is { } s ? s.ToString("0.0", CultureInfo.InvariantCulture) : "-", Markup.Escape(r.Detail), Markup.Escape(r.Note ?? ""));
        }

        console.Write(table);
        foreach (var note in vm.Notes)
        {
            console.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
        }
    }

    private static void WriteHub(IAnsiConsole console, HubSuiteResult hub)
    {
        if (hub.Load.Count > 0)
        {
            var load = new Table().Title("[bold]hub proxy under load[/] (GET {base}api/status, 1 KiB JSON; latency in ms)").Border(TableBorder.Rounded)
                .AddColumn("target").AddColumn("tool").AddColumn(new TableColumn("requests").RightAligned()).AddColumn(new TableColumn("req/s").RightAligned())
                .AddColumn(new TableColumn("p50").RightAligned()).AddColumn(new TableColumn("p90").RightAligned()).AddColumn(new TableColumn("p99").RightAligned())
                .AddColumn(new TableColumn("errors").RightAligned()).AddColumn("note");
            foreach (var r in hub.Load)
            {
                load.AddRow(Markup.Escape(r.Target), Markup.Escape(r.Tool),
                    r.Requests is { } n ? n.ToString(CultureInfo.InvariantCulture) : "[grey]-[/]",
                    r.RequestsPerSecond is { } rps ? rps.ToString("0", CultureInfo.InvariantCulture) : "[grey]-[/]",
                    Ms(r.P50Ms), Ms(r.P90Ms), Ms(r.P99Ms),
                    r.Errors == 0 ? "0" : $"[red]{r.Errors}[/]",
                    r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
            }

            if (hub.Load.Count >= 2 && hub.Load[0].P99Ms is { } d99 && hub.Load[1].P99Ms is { } h99)
            {
                var (d, h) = (hub.Load[0], hub.Load[1]);
                load.AddRow("[bold]hub (token) − direct[/]", "", "",
                    d.RequestsPerSecond is { } drps && h.RequestsPerSecond is { } hrps ? $"{hrps / drps:0.00}×" : "[grey]-[/]",
                    d.P50Ms is { } d50 && h.P50Ms is { } h50 ? Ms(h50 - d50) : "[grey]-[/]",
                    d.P90Ms is { } d90 && h.P90Ms is { } h90 ? Ms(h90 - d90) : "[grey]-[/]",
                    Ms(h99 - d99), "", "[grey]overhead of the hub with an API token (throughput as a ratio)[/]");
            }

            console.Write(load);
        }

        if (hub.WebSockets.Count > 0)
        {
            var ws = new Table().Title("[bold]WebSocket round trips[/] ({base}api/kernels/x/channels echo, sequential; ms)").Border(TableBorder.Rounded)
                .AddColumn("path").AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("p50").RightAligned())
                .AddColumn(new TableColumn("p95").RightAligned()).AddColumn(new TableColumn("p99").RightAligned()).AddColumn(new TableColumn("max").RightAligned()).AddColumn("note");
            foreach (var r in hub.WebSockets)
            {
                ws.AddRow(Markup.Escape(r.Path), r.Count.ToString(CultureInfo.InvariantCulture), Ms(r.P50Ms), Ms(r.P95Ms), Ms(r.P99Ms), Ms(r.MaxMs),
                    r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
            }

            console.Write(ws);
        }

        if (hub.Memory.Count > 0)
        {
            var mem = new Table().Title("[bold]hub memory[/] (MiB, the benchmark process: hub in-process with fake Jupyter servers)").Border(TableBorder.Rounded)
                .AddColumn("stage").AddColumn(new TableColumn("managed heap").RightAligned()).AddColumn(new TableColumn("working set").RightAligned()).AddColumn("note");
            foreach (var m in hub.Memory)
            {
                mem.AddRow(Markup.Escape(m.Stage), m.ManagedMiB.ToString("0.0", CultureInfo.InvariantCulture), m.WorkingSetMiB.ToString("0.0", CultureInfo.InvariantCulture),
                    m.Note is null ? "" : $"[grey]{Markup.Escape(m.Note)}[/]");
            }

            console.Write(mem);
        }

        if (hub.Starts.Count > 0)
        {
            var starts = new Table().Title("[bold]concurrent starts through the hub API[/] (Docker engine, minimal, seconds from the first POST)").Border(TableBorder.Rounded)
                .AddColumn("scenario").AddColumn(new TableColumn("running").RightAligned()).AddColumn(new TableColumn("all running").RightAligned())
                .AddColumn(new TableColumn("each p50").RightAligned()).AddColumn(new TableColumn("each p95").RightAligned())
                .AddColumn(new TableColumn("429s").RightAligned()).AddColumn(new TableColumn("failed").RightAligned()).AddColumn("note");
            foreach (var r in hub.Starts)
            {
                starts.AddRow(Markup.Escape(r.Scenario),
                    $"{r.Count - r.Failures}/{r.Count}",
                    r.AllRunningSeconds is { } s ? Seconds(s) : "[grey]-[/]",
                    r.Each is { } e ? Seconds(e.P50) : "[grey]-[/]",
                    r.Each is { } e2 ? Seconds(e2.P95) : "[grey]-[/]",
                    r.Throttled.ToString(CultureInfo.InvariantCulture),
                    r.Failures == 0 ? "0" : $"[red]{r.Failures}[/]",
                    r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
            }

            console.Write(starts);
        }

        WriteGoals(console, "hub goals", hub.Goals);
        var published = new Table().Title("[bold]published proxy throughput[/] (not measured here)").Border(TableBorder.Rounded)
            .AddColumn("system").AddColumn("throughput");
        foreach (var p in hub.Published)
        {
            published.AddRow(Markup.Escape(p.System), Markup.Escape(p.StartTime));
        }

        console.Write(published);
        WriteNotes(console, hub.Notes);
    }

    private static string Ms(double? ms) => ms is { } v ? v.ToString(Math.Abs(v) < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) : "[grey]-[/]";

    private static void WriteBuild(IAnsiConsole console, BuildSuiteResult build)
    {
        var table = new Table().Title("[bold]build[/]").Border(TableBorder.Rounded)
            .AddColumn("env").AddColumn("scenario").AddColumn(new TableColumn("seconds").RightAligned())
            .AddColumn("cached layers?").AddColumn(new TableColumn("image size").RightAligned()).AddColumn("note");
        foreach (var r in build.Rows)
        {
            table.AddRow(
                Markup.Escape(r.Environment), Markup.Escape(r.Scenario),
                r.Seconds is { } s ? Seconds(s) : "[grey]-[/]",
                Markup.Escape(r.Cache),
                r.SizeBytes is { } b and > 0 ? Size(b) : "[grey]-[/]",
                r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
        }

        console.Write(table);
        WriteGoals(console, "build goals", build.Goals);
        WriteNotes(console, build.Notes);
    }

    private static void WriteWorkspaces(IAnsiConsole console, WorkspaceSuiteResult ws)
    {
        var table = new Table().Title("[bold]workspaces[/] (seconds, from the call until Jupyter answers /api/status with the token)").Border(TableBorder.Rounded)
            .AddColumn("scenario").AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("min").RightAligned())
            .AddColumn(new TableColumn("p50").RightAligned()).AddColumn(new TableColumn("p95").RightAligned())
            .AddColumn(new TableColumn("max").RightAligned()).AddColumn(new TableColumn("failed").RightAligned()).AddColumn("note");
        foreach (var r in ws.Timings)
        {
            var s = r.Seconds;
            table.AddRow(
                Markup.Escape(r.Scenario),
                s is null ? "0" : s.Count.ToString(CultureInfo.InvariantCulture),
                s is null ? "[grey]-[/]" : Seconds(s.Min),
                s is null ? "[grey]-[/]" : Seconds(s.P50),
                s is null ? "[grey]-[/]" : Seconds(s.P95),
                s is null ? "[grey]-[/]" : Seconds(s.Max),
                r.Failures == 0 ? "0" : $"[red]{r.Failures}[/]",
                r.Note is null ? "" : $"[grey]{Markup.Escape(r.Note)}[/]");
        }

        console.Write(table);

        if (ws.Memory.Count > 0)
        {
            var mem = new Table().Title("[bold]memory per idle workspace[/] (MiB, ~10 s after all were ready)").Border(TableBorder.Rounded)
                .AddColumn("source").AddColumn(new TableColumn("n").RightAligned()).AddColumn(new TableColumn("mean").RightAligned())
                .AddColumn(new TableColumn("max").RightAligned()).AddColumn("note");
            foreach (var m in ws.Memory)
            {
                mem.AddRow(
                    Markup.Escape(m.Source),
                    m.MiB is null ? "0" : m.MiB.Count.ToString(CultureInfo.InvariantCulture),
                    m.MiB is null ? "[grey]-[/]" : m.MiB.Mean.ToString("0.0", CultureInfo.InvariantCulture),
                    m.MiB is null ? "[grey]-[/]" : m.MiB.Max.ToString("0.0", CultureInfo.InvariantCulture),
                    m.Note is null ? "" : $"[grey]{Markup.Escape(m.Note)}[/]");
            }

            console.Write(mem);
        }

        WriteGoals(console, "workspace goals", ws.Goals);
        var published = new Table().Title("[bold]published start times[/] (not measured here)").Border(TableBorder.Rounded)
            .AddColumn("system").AddColumn("start time");
        foreach (var p in ws.Published)
        {
            published.AddRow(Markup.Escape(p.System), Markup.Escape(p.StartTime));
        }

        console.Write(published);
        WriteNotes(console, ws.Notes);
    }

    private static void WriteGoals(IAnsiConsole console, string title, List<GoalRow> goals)
    {
        if (goals.Count == 0)
        {
            return;
        }

        var table = new Table().Title($"[bold]{Markup.Escape(title)}[/]").Border(TableBorder.Rounded)
            .AddColumn("goal").AddColumn("measured").AddColumn(new TableColumn("").Centered());
        foreach (var g in goals)
        {
            table.AddRow(Markup.Escape(g.Goal), Markup.Escape(g.Measured), g.Met switch
            {
                true => "[green]✓[/]",
                false => "[red]✗[/]",
                null => "[grey]-[/]",
            });
        }

        console.Write(table);
    }

    private static void WriteNotes(IAnsiConsole console, List<string> notes)
    {
        foreach (var note in notes)
        {
            console.MarkupLine($"[grey]note:[/] {Markup.Escape(note)}");
        }
    }

    public static string Seconds(double s) => s.ToString(s < 100 ? "0.00" : "0.0", CultureInfo.InvariantCulture);

    /// <summary>GiB (with decimal GB, as <c>docker images</c> shows) above 1 GiB, MiB below.</summary>
    public static string Size(long bytes) =>
        bytes >= 1L << 30
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):0.00} GiB ({bytes / 1e9:0.00} GB)")
            : string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0} MiB");
}
