using System.CommandLine;
using System.Diagnostics;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Images;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm up | ls | stop | start | resize | rm | logs | exec | url | sizes | doctor</c>.</summary>
public static class WorkspaceCommands
{
    private const string Owner = WorkspaceServices.LocalOwner;

    public static IEnumerable<Command> Create() =>
        [Up(), Ls(), Stop(), Start(), Resize(), Rm(), Logs(), Exec(), Url(), Sizes(), DoctorCommand.Create()];

    private static Argument<string> NameArgument() => new("name") { Description = "Workspace name" };

    private sealed class Progress(Action<string> say) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value) => say(value.Message);
    }

    private static void PrintWorkspace(Workspace w, string verb)
    {
        AnsiConsole.Console.MarkupLine($"[green]✓[/] {Markup.Escape(w.Name)} {verb} ({Markup.Escape(w.Environment)}, {Markup.Escape(w.Size)}{(w.CpuFallback ? ", CPU fallback: no GPU here" : w.GpuEnabled ? ", GPU" : "")})");
        if (WorkspaceServices.UrlOf(w, withToken: true) is { } url)
        {
            // The URL alone on its own line: easy to copy, easy to parse.
            AnsiConsole.Console.WriteLine(url);
        }
    }

    private static object Json(Workspace w) => new
    {
        w.Id, w.Name, w.Owner, w.Environment, w.Image, w.Size, w.Backend, state = w.State, w.Endpoint,
        url = WorkspaceServices.UrlOf(w, withToken: true), w.GpuEnabled, w.CpuFallback, w.HomeVolume, w.CreatedAt, w.StartedAt, w.LastError,
    };

    private static Command Up()
    {
        var env = new Option<string>("--env", "-e") { Description = "Environment (curated name or folder)", DefaultValueFactory = _ => EnvironmentLocator.Default };
        var size = new Option<string>("--size", "-s") { Description = "Machine size (see `dsvm sizes`)", DefaultValueFactory = _ => SizeCatalog.DefaultSize };
        var name = new Option<string?>("--name", "-n") { Description = "Workspace name (default: the environment's name)" };
        var backend = new Option<string?>("--backend", "-b")
        {
            Description = "Where it runs: docker (default), qemu (a VM), or a backend of backends.yaml (default: the one routed to for the size)",
        };
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("up", "Build the environment if needed, start a workspace and print its JupyterLab URL (on the hub when logged in)")
        {
            env, size, name, backend, format, local,
        };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    if (p.GetValue(backend) is not null)
                    {
                        throw new UsageException("--backend is for local workspaces: the hub picks the backend for each size (add --local)");
                    }

                    var envName = Path.GetFileName(p.GetValue(env)!.TrimEnd('/', '\\'));
                    return await RemoteCommands.UpAsync(hub, p.GetValue(name) ?? envName, envName, p.GetValue(size)!, Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var json = Output.IsJson(p, format);
            var spec = s.Images.LoadSpec(p.GetValue(env)!);
            var wsName = p.GetValue(name) ?? spec.Name;
            WorkspaceNames.Validate(wsName);
            var chosen = s.Backends.Select(p.GetValue(backend), s.Sizes.Get(p.GetValue(size)!));
            var workspace = await Output.WithProgressAsync(json, $"starting {wsName}", async say =>
            {
                var record = await s.Images.Builder.BuildAsync(spec, new BuildOptions(), new BuildProgressAdapter(say), ct);
                return await s.Manager.UpAsync(new CreateWorkspaceRequest
                {
                    Name = wsName, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = spec.Name, Image = record.Image, GpuMode = spec.Gpu, Size = p.GetValue(size)!,
                    Backend = chosen,
                }, new Progress(say), ct);
            });
            if (json)
            {
                Output.WriteJson(Json(workspace));
            }
            else
            {
                PrintWorkspace(workspace, "is running");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private sealed class BuildProgressAdapter(Action<string> say) : IProgress<BuildProgress>
    {
        public void Report(BuildProgress value) => say(value.Steps > 0 ? $"step {value.Step}/{value.Steps}: {value.Text}" : value.Text);
    }

    private static Command Ls()
    {
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("ls", "List workspaces (states checked against the engine; the hub's when logged in)") { format, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.LsAsync(hub, Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var list = await s.Manager.ListAsync(Owner, ct);
            var report = await s.Manager.ReconcileAsync(ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { workspaces = list.Select(Json), unknown = report.Unknown.Select(u => new { u.Name, u.WorkspaceId, u.Running }) });
                return ExitCodes.Ok;
            }

            if (list.Count == 0)
            {
                AnsiConsole.Console.WriteLine("no workspaces: start one with `dsvm up`");
            }
            else
            {
                var table = Output.WorkspaceTable(list.Select(w =>
                    new Output.WorkspaceRow(w.Name, w.Environment, w.Size, w.CpuFallback, w.State, w.StartedAt, WorkspaceServices.UrlOf(w, false))));
                AnsiConsole.Console.Write(table);
            }

            foreach (var u in report.Unknown)
            {
                AnsiConsole.Console.MarkupLine($"[yellow]note:[/] container {Markup.Escape(u.Name)} is labelled as OpenDSVM's but has no record (left alone; remove it with `docker rm -f {Markup.Escape(u.Name)}`)");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Stop()
    {
        var name = NameArgument();
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("stop", "Stop a workspace (its home is kept)") { name, format, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.StopAsync(hub, p.GetValue(name)!, Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var w = await s.Manager.StopAsync(Owner, p.GetValue(name)!, null, ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(Json(w));
            }
            else
            {
                AnsiConsole.Console.MarkupLine($"[green]✓[/] {Markup.Escape(w.Name)} stopped; home {Markup.Escape(w.HomeVolume)} kept");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Start()
    {
        var name = NameArgument();
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("start", "Start a stopped workspace") { name, format, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.StartAsync(hub, p.GetValue(name)!, Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var json = Output.IsJson(p, format);
            var existing = await s.Manager.GetAsync(Owner, p.GetValue(name)!, ct);
            var mode = await s.GpuModeOfAsync(existing.Image, ct);
            var w = await Output.WithProgressAsync(json, $"starting {existing.Name}", say => s.Manager.StartAsync(Owner, existing.Name, mode, new Progress(say), ct));
            if (json)
            {
                Output.WriteJson(Json(w));
            }
            else
            {
                PrintWorkspace(w, "is running");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Resize()
    {
        var name = NameArgument();
        var size = new Option<string>("--size", "-s") { Description = "New machine size", Required = true };
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("resize", "Change a workspace's size: stop, start with the new size, same home") { name, size, format, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.ResizeAsync(hub, p.GetValue(name)!, p.GetValue(size)!, Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var json = Output.IsJson(p, format);
            var existing = await s.Manager.GetAsync(Owner, p.GetValue(name)!, ct);
            var mode = await s.GpuModeOfAsync(existing.Image, ct);
            var w = await Output.WithProgressAsync(json, $"resizing {existing.Name}", say =>
                s.Manager.ResizeAsync(Owner, existing.Name, p.GetValue(size)!, mode, new Progress(say), ct));
            if (json)
            {
                Output.WriteJson(Json(w));
            }
            else
            {
                PrintWorkspace(w, w.State == WorkspaceState.Running ? "is running with its new size" : "has its new size (stopped)");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Rm()
    {
        var name = NameArgument();
        var deleteHome = new Option<bool>("--delete-home") { Description = "Also delete the home volume and every file in it (cannot be undone)" };
        var format = Output.FormatOption();
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("rm", "Delete a workspace; its home volume is kept unless --delete-home") { name, deleteHome, format, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.RmAsync(hub, p.GetValue(name)!, p.GetValue(deleteHome), Output.IsJson(p, format), ct);
                }
            }

            var s = new WorkspaceServices();
            var w = await s.Manager.GetAsync(Owner, p.GetValue(name)!, ct);
            var del = p.GetValue(deleteHome);
            await s.Manager.DeleteAsync(Owner, w.Name, del, null, ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { deleted = w.Name, homeDeleted = del, home = w.HomeVolume });
            }
            else
            {
                AnsiConsole.Console.MarkupLine(del
                    ? $"[green]✓[/] {Markup.Escape(w.Name)} deleted, with its home {Markup.Escape(w.HomeVolume)}"
                    : $"[green]✓[/] {Markup.Escape(w.Name)} deleted; home {Markup.Escape(w.HomeVolume)} kept (`dsvm up --name {Markup.Escape(w.Name)}` reuses it)");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Logs()
    {
        var name = NameArgument();
        var tail = new Option<int>("--tail") { Description = "Lines from the end", DefaultValueFactory = _ => 100 };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines (local workspaces only)" };
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("logs", "Show a workspace's Jupyter server log (on the hub when logged in)") { name, tail, follow, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    if (p.GetValue(follow))
                    {
                        throw new UsageException("--follow works on local workspaces only; without it the hub answers the last --tail lines");
                    }

                    Console.Out.WriteLine(await hub.LogsAsync(p.GetValue(name)!, p.GetValue(tail), ct));
                    return ExitCodes.Ok;
                }
            }

            var s = new WorkspaceServices();
            var w = await s.Manager.GetAsync(Owner, p.GetValue(name)!, ct);
            if (p.GetValue(follow))
            {
                s.RequireCapability(w, c => c.Logs, "logs -f");
                if (w.ContainerId is null)
                {
                    throw new ConflictException($"workspace '{w.Name}' is not running");
                }

                return await PassThroughAsync(s.Images.Docker.Executable, ["logs", "-f", "--tail", p.GetValue(tail).ToString(System.Globalization.CultureInfo.InvariantCulture), w.ContainerId], ct);
            }

            Console.Out.WriteLine(await s.Manager.LogsAsync(Owner, w.Name, p.GetValue(tail), ct));
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Exec()
    {
        var name = NameArgument();
        var command = new Argument<string[]>("command") { Description = "Command and arguments (after --)", Arity = ArgumentArity.OneOrMore };
        var timeout = new Option<int?>("--timeout") { Description = "On a hub: seconds before the command is killed (default: the hub's, 60)" };
        var local = RemoteCommands.LocalOption();
        var cmd = new Command("exec", "Run a command inside a running workspace, as its user: dsvm exec NAME -- CMD ... (on a hub: no terminal or stdin, output when it ends)") { name, command, timeout, local };
        cmd.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using (var hub = RemoteCommands.Connect(p.GetValue(local)))
            {
                if (hub is not null)
                {
                    return await RemoteCommands.ExecAsync(hub, p.GetValue(name)!, p.GetValue(command)!, p.GetValue(timeout), ct);
                }
            }

            var s = new WorkspaceServices();
            var w = await s.Manager.GetAsync(Owner, p.GetValue(name)!, ct);
            s.RequireCapability(w, c => c.Exec, "exec");
            var refreshed = (await s.Manager.ListAsync(Owner, ct)).First(x => x.Id == w.Id);
            if (refreshed.State != WorkspaceState.Running || refreshed.ContainerId is null)
            {
                throw new ConflictException($"workspace '{w.Name}' is {refreshed.State.ToString().ToLowerInvariant()}; `dsvm start {w.Name}` first");
            }

            var args = new List<string> { "exec" };
            if (!Console.IsInputRedirected)
            {
                args.Add("-i");
                if (!Console.IsOutputRedirected)
                {
                    args.Add("-t");
                }
            }

            args.Add(refreshed.ContainerId);
            args.AddRange(WorkspaceVariables.WrapExec(p.GetValue(command)!));
            return await PassThroughAsync(s.Images.Docker.Executable, args, ct);
        }, ct));
        return cmd;
    }

    /// <summary>Runs a docker command wired to this terminal and returns its exit code.</summary>
    private static async Task<int> PassThroughAsync(string exe, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new EnvironmentNotReadyException($"could not run {exe}");
        await process.WaitForExitAsync(ct);
        return process.ExitCode;
    }

    private static Command Url()
    {
        var name = NameArgument();
        var cmd = new Command("url", "Print a running workspace's JupyterLab URL (with its token)") { name };
        cmd.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            var s = new WorkspaceServices();
            var w = (await s.Manager.ListAsync(Owner, ct)).FirstOrDefault(x => x.Name == p.GetValue(name))
                ?? throw new NotFoundException($"no workspace '{p.GetValue(name)}' (see `dsvm ls`)");
            if (w.State != WorkspaceState.Running)
            {
                throw new ConflictException($"workspace '{w.Name}' is {w.State.ToString().ToLowerInvariant()}; `dsvm start {w.Name}` first");
            }

            Console.Out.WriteLine(WorkspaceServices.UrlOf(w, withToken: true));
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Sizes()
    {
        var format = Output.FormatOption();
        var cmd = new Command("sizes", "List machine sizes and which this host can run") { format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = new WorkspaceServices();
            if (s.BackendConfig.Backends.FirstOrDefault(b => b.Name == s.Backends.DefaultName) is { } defaultSection && s.BackendTypes.UsesLocalEngine(defaultSection))
            {
                await s.Images.Docker.EnsureEngineAsync(ct);
            }

            // Each size is checked against the backend it is routed to (only those are contacted).
            var capacities = new Dictionary<string, HostCapacity>(StringComparer.Ordinal);
            var unreachable = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var target in s.Sizes.All.Select(s.Backends.RouteOf).Distinct())
            {
                try
                {
                    capacities[target] = await s.Backends.Get(target).GetCapacityAsync(ct);
                }
                catch (DsvmException ex) when (target != s.Backends.DefaultName)
                {
                    unreachable[target] = ex.Message;
                }
            }

            var host = capacities.TryGetValue(s.Backends.DefaultName, out var d) ? d : new HostCapacity(0, 0, 0);
            string? WhyNot(MachineSize z, string b) => unreachable.TryGetValue(b, out var e) ? $"backend {b}: {e}" : SizeCatalog.WhyNot(z, capacities[b]);
            var rows = s.Sizes.All.Select(z => (size: z, backend: s.Backends.RouteOf(z), why: WhyNot(z, s.Backends.RouteOf(z)))).ToList();
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new
                {
                    host = new { cpus = host.Cpus, memoryBytes = host.MemoryBytes, gpus = host.Gpus },
                    sizes = rows.Select(r => new { r.size.Name, r.size.Vcpus, r.size.MemoryGiB, r.size.Gpus, r.size.Class, r.size.Description, r.backend, runnable = r.why is null, reason = r.why }),
                });
                return ExitCodes.Ok;
            }

            var routed = capacities.Count + unreachable.Count > 1;
            var table = new Table().Border(TableBorder.Simple).AddColumns("size", "class", "vCPUs", "memory", "GPUs");
            if (routed)
            {
                table.AddColumn("backend");
            }

            table.AddColumns("fits", "description");
            foreach (var (z, backendName, why) in rows)
            {
                var cells = new List<string> { Markup.Escape(z.Name), z.Class.ToString().ToLowerInvariant(), $"{z.Vcpus:0.##}", $"{z.MemoryGiB:0.##} GiB", $"{z.Gpus}" };
                if (routed)
                {
                    cells.Add(Markup.Escape(backendName));
                }

                cells.Add(why is null ? "[green]✓[/]" : $"[grey]✗ {Markup.Escape(why)}[/]");
                cells.Add(Markup.Escape(z.Description));
                table.AddRow([.. cells]);
            }

            AnsiConsole.Console.Write(table);
            foreach (var (backendName, c) in capacities.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var what = routed ? $"backend {backendName}" : "this host";
                AnsiConsole.Console.WriteLine($"{what}: {c.Cpus} CPUs, {Output.Size(c.MemoryBytes)}, {c.Gpus} GPU(s)");
            }
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }
}
