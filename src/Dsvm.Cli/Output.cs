using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary>Shared options and the one place that turns results and errors into text or JSON.</summary>
public static class Output
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public static Option<string> FormatOption()
    {
        var o = new Option<string>("--output", "-o")
        {
            Description = "Output format: text or json (for scripts)",
            DefaultValueFactory = _ => "text",
        };
        o.AcceptOnlyFromAmong("text", "json");
        return o;
    }

    public static bool IsJson(ParseResult p, Option<string> format) => p.GetValue(format) == "json";

    public static void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Json));

    /// <summary>Runs a command body: known errors become one clear line (or a JSON error) and a named exit code.</summary>
    public static async Task<int> RunAsync(ParseResult p, Option<string>? format, Func<CancellationToken, Task<int>> body, CancellationToken ct)
    {
        var json = format is not null && IsJson(p, format);
        try
        {
            return await body(ct);
        }
        catch (DsvmException ex)
        {
            return Report(json, ex);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && EngineFaults.EngineOf(ex) is { } engine)
        {
            // An engine API fault the backend did not turn into a DsvmException: one line naming the engine, exit NotReady.
            return Report(json, new EnvironmentNotReadyException(EngineMessage(engine, ex)));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            AnsiConsole.Console.MarkupLine("[yellow]cancelled[/]");
            return ExitCodes.Cancelled;
        }
        catch (Exception ex) when (ex is not OperationCanceledException && Environment.GetEnvironmentVariable("DSVM_DEBUG") is not "1")
        {
            // Never a stack trace for a user: one line, and the trace on request.
            return Report(json, new DsvmException($"unexpected {ex.GetType().Name}: {EngineFaults.Reason(ex)} (a bug: please report it; DSVM_DEBUG=1 shows the stack trace)"));
        }
    }

    private static int Report(bool json, DsvmException ex)
    {
        if (json)
        {
            WriteJson(new { error = ex.Kind, message = ex.Message });
        }
        else
        {
            var lines = ex.Message.Split('\n');
            // The message itself is written as is: never wrapped at the console width (one line for scripts and logs).
            AnsiConsole.Console.Markup("[red]error:[/] ");
            Console.Out.WriteLine(lines[0]);
            foreach (var line in lines.Skip(1))
            {
                AnsiConsole.Console.WriteLine(line);
            }
        }

        return ExitCodes.For(ex);
    }

    /// <summary>"the Docker engine at unix:///… is not reachable (…); what to do" from the configured backends.</summary>
    internal static string EngineMessage(string engine, Exception ex)
    {
        IReadOnlyList<string> endpoints;
        try
        {
            var paths = DsvmPaths.FromEnvironment();
            var registry = BackendFactory.Registry(paths, new NvidiaGpuDetector(), () => new ImageServices(paths));
            endpoints = registry.Endpoints(BackendFactory.LoadConfig(paths, registry), engine);
        }
        catch (Exception e) when (e is DsvmException or IOException or UnauthorizedAccessException)
        {
            endpoints = [];
        }

        var at = endpoints.Count > 0 ? $" at {string.Join(", ", endpoints)}" : "";
        var what = engine == "Docker" ? "start it (dockerd, or ./run.sh which starts it) or point DOCKER_HOST or the backend's endpoint in backends.yaml at it"
            : "check the kubeconfig and the API server";
        return EngineFaults.IsUnreachable(ex)
            ? $"the {engine} engine{at} is not reachable ({EngineFaults.Reason(ex)}); {what}; `dsvm doctor` checks every backend"
            : $"the {engine} engine{at} answered an error: {EngineFaults.Reason(ex)}";
    }

    /// <summary>One row of the workspace table that local and remote <c>dsvm ls</c> both print.</summary>
    public sealed record WorkspaceRow(string Name, string Environment, string Size, bool CpuFallback, Dsvm.Core.Workspaces.WorkspaceState State, DateTimeOffset? StartedAt, string? Url);

    public static Table WorkspaceTable(IEnumerable<WorkspaceRow> rows)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("name", "env", "size", "state", "url", "uptime");
        var now = DateTimeOffset.UtcNow;
        foreach (var w in rows)
        {
            var running = w.State == Dsvm.Core.Workspaces.WorkspaceState.Running;
            var state = w.State switch
            {
                Dsvm.Core.Workspaces.WorkspaceState.Running => "[green]running[/]",
                Dsvm.Core.Workspaces.WorkspaceState.Failed => "[red]failed[/]",
                _ => w.State.ToString().ToLowerInvariant(),
            };
            var uptime = running && w.StartedAt is { } st ? Duration(now - st) : "-";
            table.AddRow(Markup.Escape(w.Name), Markup.Escape(w.Environment), Markup.Escape(w.Size) + (w.CpuFallback ? " (cpu)" : ""), state,
                Markup.Escape(running ? w.Url ?? "-" : "-"), uptime);
        }

        return table;
    }

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F0} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):F0} KiB",
        _ => $"{bytes} B",
    };

    public static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F1}s";

    /// <summary>
    /// Shows progress while <paramref name="work"/> runs: a live status line with the step and elapsed time on a
    /// terminal, plain timestamped lines otherwise (CI logs), nothing on stdout in JSON mode.
    /// </summary>
    public static async Task<T> WithProgressAsync<T>(bool json, string title, Func<Action<string>, Task<T>> work)
    {
        var started = DateTimeOffset.UtcNow;
        string Elapsed() => Duration(DateTimeOffset.UtcNow - started);
        if (json)
        {
            return await work(_ => { });
        }

        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            var last = "";
            return await work(text =>
            {
                if (text != last)
                {
                    last = text;
                    AnsiConsole.Console.WriteLine($"[{Elapsed(),7}] {text}");
                }
            });
        }

        var current = title;
        return await AnsiConsole.Status().Spinner(Spinner.Known.Dots).StartAsync(title, async ctx =>
        {
            var task = work(text =>
            {
                current = text;
                AnsiConsole.Console.MarkupLine($"[grey]{Markup.Escape(Elapsed())}[/] {Markup.Escape(text.Length > 160 ? text[..160] + "…" : text)}");
            });
            while (!task.IsCompleted)
            {
                ctx.Status($"{Markup.Escape(current.Length > 100 ? current[..100] + "…" : current)} [grey]({Elapsed()})[/]");
                await Task.WhenAny(task, Task.Delay(250));
            }

            return await task;
        });
    }
}
