using System.CommandLine;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm doctor</c>: is this machine ready, and what can it run?</summary>
public static class DoctorCommand
{
    public sealed record Finding(string Check, bool Ok, string Detail);

    public static Command Create()
    {
        var format = Output.FormatOption();
        var repair = new Option<bool>("--repair")
        {
            Description = "Reconcile every record with the engine, and rebuild missing records (after a corrupt state file was moved aside) from the engine's labels",
        };
        var cmd = new Command("doctor", "Check the engine, versions, GPUs and driver, disk and OpenDSVM's own state") { format, repair };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            if (p.GetValue(repair))
            {
                return await RepairAsync(Output.IsJson(p, format), ct);
            }

            var findings = await RunAsync(ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { ok = findings.All(f => f.Ok), findings });
            }
            else
            {
                var table = new Table().Border(TableBorder.Simple).AddColumns("", "check", "detail");
                foreach (var f in findings)
                {
                    table.AddRow(f.Ok ? "[green]✓[/]" : "[red]✗[/]", Markup.Escape(f.Check), Markup.Escape(f.Detail));
                }

                AnsiConsole.Console.Write(table);
            }

            return findings.All(f => f.Ok) ? ExitCodes.Ok : ExitCodes.NotReady;
        }, ct));
        return cmd;
    }

    /// <summary>
    /// <c>dsvm doctor --repair</c>: rebuilds records of labelled objects that have none (Stopped, new token, running
    /// servers stopped, homes kept), then applies the repair rules to every record (docs/workspaces.md).
    /// </summary>
    private static async Task<int> RepairAsync(bool json, CancellationToken ct)
    {
        var s = new WorkspaceServices();
        var rebuilt = await s.Manager.RebuildFromLabelsAsync(ct);
        var report = await s.Manager.ReconcileAsync(ct);
        if (json)
        {
            Output.WriteJson(new
            {
                rebuilt = rebuilt.Select(w => new { w.Id, w.Owner, w.Name, w.Environment, w.Size, w.HomeVolume }),
                repaired = report.Repaired,
                unknown = report.Unknown.Select(u => new { u.Name, u.WorkspaceId, u.Running }),
            });
            return ExitCodes.Ok;
        }

        foreach (var w in rebuilt)
        {
            AnsiConsole.Console.MarkupLine($"[green]✓[/] rebuilt {Markup.Escape(w.Owner)}/{Markup.Escape(w.Name)} ({Markup.Escape(w.Environment)}, {Markup.Escape(w.Size)}) from the engine's labels: stopped, home {Markup.Escape(w.HomeVolume)} kept; `dsvm start {Markup.Escape(w.Name)}`");
        }

        foreach (var r in report.Repaired)
        {
            AnsiConsole.Console.MarkupLine($"[green]✓[/] repaired {Markup.Escape(r)}");
        }

        foreach (var u in report.Unknown)
        {
            AnsiConsole.Console.MarkupLine($"[yellow]note:[/] {Markup.Escape(u.Name)} is labelled for workspace {Markup.Escape(u.WorkspaceId)} but has no owner/name labels: left alone");
        }

        if (rebuilt.Count == 0 && report.Repaired.Count == 0 && report.Unknown.Count == 0)
        {
            AnsiConsole.Console.WriteLine("nothing to repair: every record matches the engine");
        }

        return ExitCodes.Ok;
    }

    /// <summary>One finding per configured backend: its own health line and capacity, each within 15 s.</summary>
    private static async Task<IReadOnlyList<Finding>> BackendFindingsAsync(CancellationToken ct)
    {
        WorkspaceServices services;
        try
        {
            services = new WorkspaceServices();
        }
        catch (DsvmException ex)
        {
            return [new Finding("backends", false, ex.Message)];
        }

        var findings = new List<Finding>();
        foreach (var section in services.BackendConfig.Backends)
        {
            var label = $"backend {section.Name}" + (section.Name == section.Type ? "" : $" ({section.Type})") + (section.Name == services.Backends.DefaultName ? ", default" : "");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            try
            {
                var backend = services.Backends.Get(section.Name);
                var health = backend is IDescribableBackend d
                    ? await d.DescribeAsync(timeout.Token)
                    : new BackendHealth(true, "configured", await backend.GetCapacityAsync(timeout.Token));
                var capacity = health.Capacity is { } c ? $"; capacity {c.Cpus} CPUs, {Output.Size(c.MemoryBytes)}, {c.Gpus} GPU(s)" : "";
                findings.Add(new Finding(label, health.Healthy, health.Detail + capacity));
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                findings.Add(new Finding(label, false, "did not answer within 15 s"));
            }
            catch (DsvmException ex)
            {
                findings.Add(new Finding(label, false, ex.Message));
            }
        }

        return findings;
    }

    /// <summary>
    /// A host account with the workspace uid can read every workspace's processes (the Jupyter token in their
    /// environment) and homes; fine when the engine remaps users (userns-remap), where that uid is not the host's.
    /// </summary>
    public static Finding WorkspaceUidFinding(string passwd, bool usernsRemap)
    {
        const string check = "workspace uid";
        if (usernsRemap)
        {
            return new Finding(check, true, $"{WorkspaceUser.Uid}, remapped by the engine (userns-remap): not a host uid");
        }

        var accounts = WorkspaceUser.HostAccountsWithUid(passwd);
        return accounts.Count == 0
            ? new Finding(check, true, $"{WorkspaceUser.Uid}: no host account has it")
            : new Finding(check, false,
                $"{WorkspaceUser.Uid} is also the host account {string.Join(", ", accounts)}, whose processes can read the workspaces' tokens and homes; " +
                $"give it another uid (usermod -u NEWUID {accounts[0]}) or run the engine with userns-remap (docs/security.md)");
    }

    public static async Task<IReadOnlyList<Finding>> RunAsync(CancellationToken ct)
    {
        var findings = new List<Finding>();
        var paths = DsvmPaths.FromEnvironment().EnsureCreated();
        var docker = new Dsvm.Images.DockerCli(Environment.GetEnvironmentVariable("DSVM_DOCKER") is { Length: > 0 } d ? d : "docker");
        var info = await docker.RunAsync(["info", "--format",
            "{{.ServerVersion}}|{{.Driver}}|{{.CgroupDriver}}|{{.CgroupVersion}}|{{.NCPU}}|{{.MemTotal}}|{{.DockerRootDir}}|{{range $k, $v := .Runtimes}}{{$k}},{{end}}|{{range .SecurityOptions}}{{.}},{{end}}"], ct);
        var engineOk = info.Ok && info.Stdout.Contains('|', StringComparison.Ordinal);
        if (!engineOk)
        {
            findings.Add(new Finding("docker engine", false, $"not reachable: {info.Tail(1)} (./run.sh starts it)"));
        }
        else
        {
            var f = info.Stdout.Trim().Split('|');
            findings.Add(new Finding("docker engine", true, $"version {f[0]}, storage {f[1]}, cgroup {f[2]} v{f[3]}"));
            findings.Add(new Finding("capacity", true, $"{f[4]} CPUs, {Output.Size(long.Parse(f[5], System.Globalization.CultureInfo.InvariantCulture))} memory"));
            var root = Directory.Exists(f[6]) ? f[6] : "/";
            var free = new DriveInfo(root).AvailableFreeSpace;
            findings.Add(new Finding("disk", free > 10L << 30, $"{Output.Size(free)} free under {root}{(free > 10L << 30 ? "" : " (datascience needs ~4 GiB per build; keep 10 GiB free)")}"));
            var gpus = await new Dsvm.Docker.NvidiaGpuDetector().DetectAsync(ct);
            var nvidiaRuntime = f[7].Split(',').Contains("nvidia");
            findings.Add(new Finding("gpus", true, gpus.Count == 0
                ? "none (GPU sizes fall back to CPU for gpu: optional environments)"
                : string.Join("; ", gpus.Select(g => $"#{g.Index} {g.Name} {g.MemoryMiB} MiB, driver {g.Driver}")) + (nvidiaRuntime ? ", nvidia runtime" : ", devices passed directly (no nvidia runtime)")));
        }

        var usernsRemap = engineOk && info.Stdout.Trim().Split('|') is { Length: > 8 } so && so[8].Contains("name=userns", StringComparison.Ordinal);
        findings.Add(WorkspaceUidFinding(File.Exists("/etc/passwd") ? await File.ReadAllTextAsync("/etc/passwd", ct) : "", usernsRemap));

        var debootstrap = File.Exists("/usr/sbin/debootstrap");
        findings.Add(new Finding("debootstrap", debootstrap, debootstrap ? "present (base images)" : "missing: apt-get install debootstrap"));
        try
        {
            var store = new Dsvm.Data.SqliteWorkspaceStore(paths.Database);
            var count = (await store.ListAsync(null, ct)).Count;
            findings.Add(new Finding("state", true, $"{paths.Database} ({count} workspace(s))"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException or StateFileException)
        {
            findings.Add(new Finding("state", false, ex is StateFileException ? ex.Message : $"{paths.Database}: {ex.Message}"));
        }

        findings.AddRange(await BackendFindingsAsync(ct));

        if (engineOk)
        {
            var images = await docker.RunAsync(["images", "--filter", "label=io.opendsvm.environment", "--format", "{{.Repository}}:{{.Tag}}"], ct);
            var latest = images.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(i => i.EndsWith(":latest", StringComparison.Ordinal) && i.StartsWith("dsvm/", StringComparison.Ordinal)).ToList();
            findings.Add(new Finding("environments", true, latest.Count == 0 ? "none built yet (`dsvm env build`)" : string.Join(", ", latest)));
        }

        return findings;
    }
}
