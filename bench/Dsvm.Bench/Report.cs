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

internal sealed record BenchReport(DateTimeOffset StartedAt, HostInfo Host, string Home, BuildSuiteResult? Build, WorkspaceSuiteResult? Workspaces);

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
    }

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
