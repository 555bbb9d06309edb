using System.CommandLine;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Images;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm env diff A B</c>, and the one-line lock change summary of <c>env lock</c> and <c>env build</c>.</summary>
public static class EnvDiffCommand
{
    public static Command Create()
    {
        var a = new Argument<string>("a") { Description = "Lock file, environment (its current environment.lock) or image (e.g. dsvm/minimal:latest)" };
        var b = new Argument<string>("b") { Description = "The same kinds as A" };
        var format = Output.FormatOption();
        var cmd = new Command("diff", "What changed between two locks or two images: packages added, removed, upgraded, downgraded; layer sizes of images") { a, b, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            var report = await new EnvironmentDiffer(s.Docker, s.Inspector).DiffAsync(p.GetValue(a)!, p.GetValue(b)!, ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(report);
                return ExitCodes.Ok;
            }

            Write(report);
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static void Write(EnvironmentDiffReport r)
    {
        var c = AnsiConsole.Console;
        c.WriteLine($"A: {r.A.Kind} {r.A.Name} ({r.A.Packages} packages)");
        c.WriteLine($"B: {r.B.Kind} {r.B.Name} ({r.B.Packages} packages)");
        var d = r.Packages;
        if (d.IsEmpty)
        {
            c.WriteLine($"packages: the same {d.Unchanged}");
        }
        else
        {
            c.WriteLine($"packages: {d.Counts} ({d.Added.Count} added, {d.Removed.Count} removed, {d.Upgraded.Count} upgraded, {d.Downgraded.Count} downgraded, {d.Unchanged} unchanged)");
            var table = new Table().Border(TableBorder.Simple).AddColumns("", "package", "A", "B");
            foreach (var x in d.Added)
            {
                table.AddRow("[green]+[/]", Markup.Escape(x.Name), "", Markup.Escape(x.Version));
            }

            foreach (var x in d.Removed)
            {
                table.AddRow("[red]−[/]", Markup.Escape(x.Name), Markup.Escape(x.Version), "");
            }

            foreach (var (mark, list) in new[] { ("↑", d.Upgraded), ("[yellow]↓[/]", d.Downgraded), ("=", d.Respelled) })
            {
                foreach (var x in list)
                {
                    table.AddRow(mark, Markup.Escape(x.Name), Markup.Escape(x.From), Markup.Escape(x.To));
                }
            }

            c.Write(table);
        }

        if (r.Layers is { } layers)
        {
            var table = new Table().Border(TableBorder.Simple).AddColumns("step", "A", "B", "");
            foreach (var l in layers)
            {
                var step = l.Step.Length > 70 ? l.Step[..70] + "…" : l.Step;
                table.AddRow(Markup.Escape(step), l.SizeA is { } x ? Output.Size(x) : "-", l.SizeB is { } y ? Output.Size(y) : "-", l.Shared ? "shared" : "");
            }

            table.AddRow("[bold]total[/]", Output.Size(r.SizeA ?? 0), Output.Size(r.SizeB ?? 0), "");
            c.Write(table);
        }
    }

    /// <summary>The lock in <paramref name="directory"/> as it is now, or null (missing or unreadable: then every package is new).</summary>
    public static EnvironmentLock? Snapshot(string directory)
    {
        try
        {
            var file = Path.Combine(directory, EnvironmentLock.FileName);
            return File.Exists(file) ? EnvironmentLock.Load(file) : null;
        }
        catch (DsvmException)
        {
            return null;
        }
    }
}
