using System.CommandLine;
using System.Text;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Api;
using Dsvm.Hub.Services;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm login | logout | class</c>, and the hub side of <c>up | ls | stop | start | resize | rm</c>.</summary>
public static class RemoteCommands
{
    public static IEnumerable<Command> Create() => [LoginCommand(), LogoutCommand(), ClassCommand(), HomesCommand()];

    /// <summary>The option that forces the local engine even when logged in to a hub.</summary>
    public static Option<bool> LocalOption() => new("--local") { Description = "Use the local engine even when logged in to a hub" };

    /// <summary>A client for the hub this CLI is logged in to, or null to work locally.</summary>
    public static HubClient? Connect(bool local) =>
        local ? null : RemoteConfig.FromEnvironment().Load() is { } login ? new HubClient(login) : null;

    /// <summary><c>dsvm exec</c> on a hub: stdout and stderr as the command wrote them, and its exit code as ours.</summary>
    public static async Task<int> ExecAsync(HubClient hub, string name, IReadOnlyList<string> command, int? timeoutSeconds, CancellationToken ct)
    {
        var result = await hub.ExecAsync(name, command, timeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : null, ct);
        await Console.Out.WriteAsync(result.Stdout);
        await Console.Error.WriteAsync(result.Stderr);
        if (result.Truncated)
        {
            Console.Error.WriteLine("note: the output was cut at the hub's limit");
        }

        if (result.TimedOut)
        {
            Console.Error.WriteLine("note: the command ran out of time and was killed");
        }

        return result.ExitCode;
    }

    private static Command LoginCommand()
    {
        var url = new Argument<string>("url") { Description = "The hub's address, e.g. https://hub.example.org" };
        var user = new Option<string?>("--user", "-u") { Description = "User name (default: $USER)" };
        var token = new Option<string?>("--token") { Description = "An API token made in the hub (instead of a password)" };
        var insecure = new Option<bool>("--insecure") { Description = "Allow plain http to a hub on another machine (the password or token crosses the network in clear text)" };
        var cmd = new Command("login", "Log in to a hub: later up/ls/stop/start/resize/rm act there (--local forces this machine)") { url, user, token, insecure };
        cmd.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            var config = RemoteConfig.FromEnvironment();
            RemoteLogin login;
            if (p.GetValue(token) is { Length: > 0 } t)
            {
                login = await HubClient.LoginWithTokenAsync(p.GetValue(url)!, t, p.GetValue(insecure), ct);
            }
            else
            {
                var name = p.GetValue(user) ?? Environment.UserName;
                HubClient.RequireSecureTransport(p.GetValue(url)!, p.GetValue(insecure)); // before asking for the password
                var password = ReadPassword($"password for {name}: ");
                login = await HubClient.LoginWithPasswordAsync(p.GetValue(url)!, name, password, p.GetValue(insecure), ct);
            }

            config.Save(login);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] logged in to {Markup.Escape(login.Hub)} as {Markup.Escape(login.User ?? "?")}; token kept in {Markup.Escape(config.FilePath)}");
            if (config.FromVariables)
            {
                AnsiConsole.Console.MarkupLine("[yellow]note:[/] DSVM_HUB_URL and DSVM_HUB_TOKEN are set and win over this login");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    /// <summary>Reads a password: without echo from a terminal, a plain line when stdin is redirected.</summary>
    private static string ReadPassword(string prompt)
    {
        if (Console.IsInputRedirected)
        {
            return Console.In.ReadLine() ?? throw new UsageException("no password on standard input");
        }

        Console.Error.Write(prompt);
        var sb = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                if (sb.Length > 0)
                {
                    sb.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                sb.Append(key.KeyChar);
            }
        }

        Console.Error.WriteLine();
        return sb.ToString();
    }

    private static Command LogoutCommand()
    {
        var cmd = new Command("logout", "Forget the hub login (and revoke its token, best effort)");
        cmd.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            var config = RemoteConfig.FromEnvironment();
            var path = config.FilePath;
            RemoteLogin? login = null;
            try
            {
                login = File.Exists(path) ? new RemoteConfig(config.Directory).Load() : null;
            }
            catch (UsageException)
            {
                // A damaged file is deleted all the same.
            }

            if (login is not null)
            {
                try
                {
                    using var hub = new HubClient(login);
                    await hub.RevokeAsync(ct);
                }
                catch (DsvmException ex)
                {
                    AnsiConsole.Console.MarkupLine($"[yellow]note:[/] could not revoke the token: {Markup.Escape(ex.Message)}");
                }
            }

            AnsiConsole.Console.WriteLine(config.Delete() ? $"logged out ({path} deleted)" : "not logged in");
            if (config.FromVariables)
            {
                AnsiConsole.Console.MarkupLine("[yellow]note:[/] DSVM_HUB_URL and DSVM_HUB_TOKEN are still set");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static HubClient RequireHub() =>
        Connect(local: false) ?? throw new UsageException("log in to a hub first: dsvm login URL");

    private static Command ClassCommand()
    {
        var cls = new Command("class", "Classes and hackathons on a hub (admins): many users with a workspace each");
        var name = new Option<string>("--name") { Description = "Class name: the members' group and their workspaces' name", Required = true };
        var env = new Option<string>("--env", "-e") { Description = "Environment", DefaultValueFactory = _ => "datascience" };
        var size = new Option<string>("--size", "-s") { Description = "Machine size", DefaultValueFactory = _ => Dsvm.Core.Sizes.SizeCatalog.DefaultSize };
        var count = new Option<int>("--count") { Description = "Number of members", Required = true };
        var prefix = new Option<string?>("--prefix") { Description = "User name prefix (default: the class name)" };
        var noPrestart = new Option<bool>("--no-prestart") { Description = "Do not start a workspace for each member now" };
        var csv = new Option<string?>("--csv") { Description = "Credentials file (default: NAME-credentials.csv)" };
        var format = Output.FormatOption();
        var create = new Command("create", "Create the users (and start their workspaces); writes their credentials to a CSV (mode 0600)")
        {
            name, env, size, count, prefix, noPrestart, csv, format,
        };
        create.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            using var hub = RequireHub();
            var className = p.GetValue(name)!;
            var created = await hub.CreateClassAsync(className, p.GetValue(env)!, p.GetValue(size)!, p.GetValue(count), !p.GetValue(noPrestart), p.GetValue(prefix), ct);
            var file = p.GetValue(csv) ?? $"{className}-credentials.csv";
            WriteCredentialsCsv(file, hub.Login.Hub, created.Users);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { created.Class, csv = file, users = created.Users.Select(u => new { u.Name, u.Password, url = hub.Login.Hub + u.Url }) });
                return ExitCodes.Ok;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("user", "password", "url");
            foreach (var u in created.Users)
            {
                table.AddRow(Markup.Escape(u.Name), Markup.Escape(u.Password), Markup.Escape(hub.Login.Hub + u.Url));
            }

            AnsiConsole.Console.Write(table);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] class {Markup.Escape(created.Class)}: {created.Users.Count} users; credentials in {Markup.Escape(file)} (shown once)");
            return ExitCodes.Ok;
        }, ct));

        var lsFormat = Output.FormatOption();
        var ls = new Command("ls", "List classes: members and workspace states") { lsFormat };
        ls.SetAction((p, ct) => Output.RunAsync(p, lsFormat, async ct =>
        {
            using var hub = RequireHub();
            var list = await hub.ListClassesAsync(ct);
            if (Output.IsJson(p, lsFormat))
            {
                Output.WriteJson(list);
                return ExitCodes.Ok;
            }

            if (list.Count == 0)
            {
                AnsiConsole.Console.WriteLine("no classes: make one with `dsvm class create`");
                return ExitCodes.Ok;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("class", "members", "running", "states");
            foreach (var c in list)
            {
                table.AddRow(Markup.Escape(c.Name), $"{c.Members}", $"{c.Running}", Markup.Escape(string.Join(", ", c.States.Select(s => $"{s.Key} {s.Value}"))));
            }

            AnsiConsole.Console.Write(table);
            return ExitCodes.Ok;
        }, ct));

        var credName = new Argument<string>("name") { Description = "Class name" };
        var credCsv = new Option<string?>("--csv") { Description = "Credentials file (default: NAME-credentials.csv)" };
        var credentials = new Command("credentials", "Issue NEW passwords to every member and write them to a CSV (the old ones stop working)") { credName, credCsv };
        credentials.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using var hub = RequireHub();
            var className = p.GetValue(credName)!;
            var users = ParseCredentialsCsv(await hub.ClassCredentialsCsvAsync(className, ct));
            var file = p.GetValue(credCsv) ?? $"{className}-credentials.csv";
            WriteCredentialsCsv(file, hub.Login.Hub, users);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] new passwords for {users.Count} members of {Markup.Escape(className)} in {Markup.Escape(file)} (the old ones no longer work)");
            return ExitCodes.Ok;
        }, ct));

        var rmName = new Argument<string>("name") { Description = "Class name" };
        var deleteHomes = new Option<bool>("--delete-homes") { Description = "Also delete the members' home volumes (cannot be undone)" };
        var rm = new Command("rm", "Tear a class down: its members' workspaces (homes kept unless --delete-homes) and the members") { rmName, deleteHomes };
        rm.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using var hub = RequireHub();
            var r = await hub.DeleteClassAsync(p.GetValue(rmName)!, p.GetValue(deleteHomes), ct);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] class {Markup.Escape(r.Class)}: {r.Users} users and {r.Workspaces} workspaces deleted" + (r.HomesDeleted ? ", with their homes" : "; homes kept"));
            return ExitCodes.Ok;
        }, ct));

        cls.Subcommands.Add(create);
        cls.Subcommands.Add(ls);
        cls.Subcommands.Add(credentials);
        cls.Subcommands.Add(rm);
        return cls;
    }

    private static Command HomesCommand()
    {
        var homes = new Command("homes", "Homes on a hub (admins): list them, give an orphaned home (of a deleted user) to a user, or purge it");
        var orphaned = new Option<bool>("--orphaned") { Description = "Only the homes of deleted users (attached to nobody)" };
        var lsFormat = Output.FormatOption();
        var ls = new Command("ls", "List homes: owner, the workspace using it, orphaned or not") { orphaned, lsFormat };
        ls.SetAction((p, ct) => Output.RunAsync(p, lsFormat, async ct =>
        {
            using var hub = RequireHub();
            var list = await hub.ListHomesAsync(p.GetValue(orphaned), ct);
            if (Output.IsJson(p, lsFormat))
            {
                Output.WriteJson(list);
                return ExitCodes.Ok;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("id", "owner", "name", "used by", "state", "backend");
            foreach (var h in list)
            {
                table.AddRow(Markup.Escape(h.Id), Markup.Escape(h.Owner ?? ""), Markup.Escape(h.Name), Markup.Escape(h.UsedBy ?? "-"),
                    h.Orphaned ? $"orphaned {h.OrphanedAt:yyyy-MM-dd}" : "live", Markup.Escape(h.Backend));
            }

            AnsiConsole.Console.Write(table);
            return ExitCodes.Ok;
        }, ct));

        var id = new Argument<string>("id") { Description = "Home ID (h-…, from `dsvm homes ls`)" };
        var user = new Option<string>("--user") { Description = "The user who gets the home", Required = true };
        var workspace = new Option<string?>("--workspace") { Description = "Their workspace the home attaches to (default: the home's name)" };
        var reassign = new Command("reassign", "Give a home to a user: their workspace of that name starts with its files") { id, user, workspace };
        reassign.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using var hub = RequireHub();
            var h = await hub.ReassignHomeAsync(p.GetValue(id)!, p.GetValue(user)!, p.GetValue(workspace), ct);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] home {Markup.Escape(h.Id)} now belongs to {Markup.Escape(h.Owner ?? "")}, workspace {Markup.Escape(h.Name)}");
            return ExitCodes.Ok;
        }, ct));

        var purgeId = new Argument<string>("id") { Description = "Home ID (h-…)" };
        var purge = new Command("purge", "Delete a home that no workspace uses, with all its files (cannot be undone)") { purgeId };
        purge.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            using var hub = RequireHub();
            await hub.PurgeHomeAsync(p.GetValue(purgeId)!, ct);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] home {Markup.Escape(p.GetValue(purgeId)!)} purged");
            return ExitCodes.Ok;
        }, ct));

        homes.Subcommands.Add(ls);
        homes.Subcommands.Add(reassign);
        homes.Subcommands.Add(purge);
        return homes;
    }

    /// <summary>Writes <c>user,password,url</c> (absolute URLs) to a file readable by its owner only (0600).</summary>
    public static void WriteCredentialsCsv(string path, string hub, IEnumerable<ClassCredential> users) =>
        RemoteConfig.WritePrivateFile(path, "user,password,url\n" + string.Concat(users.Select(u =>
            $"{u.Name},{u.Password},{(u.Url.StartsWith('/') ? hub.TrimEnd('/') + u.Url : u.Url)}\n")));

    /// <summary>Reads the hub's credentials CSV (header, then <c>user,password,url</c> rows).</summary>
    public static IReadOnlyList<ClassCredential> ParseCredentialsCsv(string csv) =>
        csv.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1)
            .Select(line => line.Split(',', 3))
            .Where(cells => cells.Length == 3)
            .Select(cells => new ClassCredential(cells[0], cells[1], cells[2]))
            .ToList();

    // --- up / ls / stop / start / resize / rm through the hub ---

    /// <summary>A workspace URL: relative to the hub, or absolute on the workspace's own host (per-workspace origins).</summary>
    private static string Absolute(string hub, string url) => url.StartsWith('/') ? hub + url : url;

    private static object Json(WorkspaceDto w, string hub) => new
    {
        w.Name, w.Owner, w.Environment, w.Size, state = w.State, url = Absolute(hub, w.Url), w.Gpu, w.CpuFallback, w.CreatedAt, w.StartedAt, w.LastError,
    };

    private static void Print(WorkspaceDto w, string hub, string verb)
    {
        AnsiConsole.Console.MarkupLine($"[green]✓[/] {Markup.Escape(w.Name)} {verb} ({Markup.Escape(w.Environment)}, {Markup.Escape(w.Size)}{(w.CpuFallback ? ", CPU fallback: no GPU there" : w.Gpu ? ", GPU" : "")})");
        if (w.State == WorkspaceState.Running)
        {
            // No token: the browser logs in to the hub.
            AnsiConsole.Console.WriteLine(Absolute(hub, w.Url));
        }
    }

    public static async Task<int> UpAsync(HubClient hub, string name, string environment, string size, bool json, CancellationToken ct)
    {
        WorkspaceNames.Validate(name);
        var w = await Output.WithProgressAsync(json, $"starting {name} on {hub.Login.Hub}", _ => hub.UpAsync(name, environment, size, ct));
        return Done(w, hub, json, "is running");
    }

    public static async Task<int> LsAsync(HubClient hub, bool json, CancellationToken ct)
    {
        var list = await hub.ListAsync(ct);
        if (json)
        {
            Output.WriteJson(new { hub = hub.Login.Hub, workspaces = list.Select(w => Json(w, hub.Login.Hub)) });
            return ExitCodes.Ok;
        }

        if (list.Count == 0)
        {
            AnsiConsole.Console.WriteLine($"no workspaces on {hub.Login.Hub}: start one with `dsvm up`");
            return ExitCodes.Ok;
        }

        var table = Output.WorkspaceTable(list.Select(w =>
            new Output.WorkspaceRow(w.Name, w.Environment, w.Size, w.CpuFallback, w.State, w.StartedAt, Absolute(hub.Login.Hub, w.Url))));
        AnsiConsole.Console.Write(table);
        return ExitCodes.Ok;
    }

    public static async Task<int> StopAsync(HubClient hub, string name, bool json, CancellationToken ct)
    {
        var w = await hub.StopAsync(name, ct);
        if (json)
        {
            Output.WriteJson(Json(w, hub.Login.Hub));
        }
        else
        {
            AnsiConsole.Console.MarkupLine($"[green]✓[/] {Markup.Escape(w.Name)} stopped on {Markup.Escape(hub.Login.Hub)}; home kept");
        }

        return ExitCodes.Ok;
    }

    public static async Task<int> StartAsync(HubClient hub, string name, bool json, CancellationToken ct)
    {
        var w = await Output.WithProgressAsync(json, $"starting {name} on {hub.Login.Hub}", _ => hub.StartAsync(name, ct));
        return Done(w, hub, json, "is running");
    }

    public static async Task<int> ResizeAsync(HubClient hub, string name, string size, bool json, CancellationToken ct)
    {
        var w = await Output.WithProgressAsync(json, $"resizing {name} on {hub.Login.Hub}", _ => hub.ResizeAsync(name, size, ct));
        return Done(w, hub, json, w.State == WorkspaceState.Running ? "is running with its new size" : "has its new size (stopped)");
    }

    public static async Task<int> RmAsync(HubClient hub, string name, bool deleteHome, bool json, CancellationToken ct)
    {
        await hub.DeleteAsync(name, deleteHome, ct);
        if (json)
        {
            Output.WriteJson(new { deleted = name, homeDeleted = deleteHome, hub = hub.Login.Hub });
        }
        else
        {
            AnsiConsole.Console.MarkupLine(deleteHome
                ? $"[green]✓[/] {Markup.Escape(name)} deleted on {Markup.Escape(hub.Login.Hub)}, with its home"
                : $"[green]✓[/] {Markup.Escape(name)} deleted on {Markup.Escape(hub.Login.Hub)}; home kept");
        }

        return ExitCodes.Ok;
    }

    private static int Done(WorkspaceDto w, HubClient hub, bool json, string verb)
    {
        if (json)
        {
            Output.WriteJson(Json(w, hub.Login.Hub));
        }
        else
        {
            Print(w, hub.Login.Hub, verb);
        }

        return ExitCodes.Ok;
    }
}
