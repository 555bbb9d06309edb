using System.CommandLine;
using Dsvm.Core;
using Dsvm.Core.Checks;
using Dsvm.Core.Locks;
using Dsvm.Images;
using Dsvm.Images.Vm;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm env ...</c>: environments as code.</summary>
public static class EnvCommands
{
    public static Command Create()
    {
        var env = new Command("env", "Environments as code: validate, lock, build, test, inspect and list images");
        env.Subcommands.Add(Validate());
        env.Subcommands.Add(Lock());
        env.Subcommands.Add(Build());
        env.Subcommands.Add(Test());
        env.Subcommands.Add(Inspect());
        env.Subcommands.Add(List());
        env.Subcommands.Add(Toolsets());
        env.Subcommands.Add(Export());
        env.Subcommands.Add(EnvDiffCommand.Create());
        env.Subcommands.Add(EnvPushCommand.Create());
        return env;
    }

    private static Argument<string> EnvArgument() => new("env")
    {
        Description = "Environment folder, spec file, or curated name (datascience, minimal, gpu)",
        DefaultValueFactory = _ => EnvironmentLocator.Default,
    };

    private static Command Validate()
    {
        var arg = EnvArgument();
        var format = Output.FormatOption();
        var cmd = new Command("validate", "Check an environment spec without building anything") { arg, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, _ =>
        {
            var spec = new ImageServices(DsvmPaths.FromEnvironment()).LoadSpec(p.GetValue(arg)!);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { valid = true, name = spec.Name, file = spec.FilePath, spec.Toolsets, spec.Packages });
            }
            else
            {
                AnsiConsole.Console.MarkupLine($"[green]✓[/] {Markup.Escape(spec.FilePath)} is valid ({spec.Toolsets.Count} toolsets, {spec.Packages.Count} extra packages)");
            }

            return Task.FromResult(ExitCodes.Ok);
        }, ct));
        return cmd;
    }

    private static Command Lock()
    {
        var arg = EnvArgument();
        var format = Output.FormatOption();
        var cmd = new Command("lock", "Resolve every apt package (dependencies included) to an exact version; writes environment.lock") { arg, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            var spec = s.LoadSpec(p.GetValue(arg)!);
            await s.Docker.EnsureEngineAsync(ct);
            var json = Output.IsJson(p, format);
            var lockFile = await Output.WithProgressAsync(json, "resolving", say => s.Resolver.ResolveAsync(spec, say, ct));
            var before = EnvDiffCommand.Snapshot(spec.Directory);
            lockFile.Save(spec.Directory);
            var change = PackageDiff.ChangeLine(before, lockFile);
            var file = Path.Combine(spec.Directory, EnvironmentLock.FileName);
            if (json)
            {
                Output.WriteJson(new
                {
                    file, digest = lockFile.Digest, packages = lockFile.AllPackages.Count,
                    toolsets = lockFile.ToolsetPackages.Count, extra = lockFile.ExtraPackages.Count, @base = lockFile.BasePackages.Count,
                    pip = lockFile.Pip?.Packages.Count ?? 0,
                    changed = change is not null, changes = change is null ? null : PackageDiff.Compute(before?.AllPackages ?? [], lockFile.AllPackages),
                });
            }
            else
            {
                AnsiConsole.Console.MarkupLine(
                    $"[green]✓[/] wrote {Markup.Escape(file)}: {lockFile.AllPackages.Count} packages "
                    + $"(base {lockFile.BasePackages.Count}, toolsets {lockFile.ToolsetPackages.Count}, extra {lockFile.ExtraPackages.Count})"
                    + (lockFile.Pip is { } pip ? $" and {pip.Packages.Count} pip distributions" : "") + $", {lockFile.Digest[..19]}");
                AnsiConsole.Console.WriteLine(change ?? "lock unchanged");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Build()
    {
        var arg = EnvArgument();
        var format = Output.FormatOption();
        var frozen = new Option<bool>("--frozen") { Description = "Fail if environment.lock is missing or stale instead of re-resolving" };
        var noCache = new Option<bool>("--no-cache") { Description = "Rebuild every layer, even if an image with this tag exists" };
        var push = EnvPushCommand.PushOption();
        var cmd = new Command("build", "Build (lock if needed, build, run the in-image checks) an environment image") { arg, format, frozen, noCache, push };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            var registry = p.GetValue(push) is { } r ? Dsvm.Images.Registry.RegistryAddress.Parse(r) : null; // bad syntax fails before building
            var spec = s.LoadSpec(p.GetValue(arg)!);
            var json = Output.IsJson(p, format);
            var options = new BuildOptions { Frozen = p.GetValue(frozen), NoCache = p.GetValue(noCache) };
            var before = EnvDiffCommand.Snapshot(spec.Directory);
            var record = await Output.WithProgressAsync(json, $"building {spec.Name}", say =>
                s.Builder.BuildAsync(spec, options, new Progress(say), ct));
            if (json && registry is null)
            {
                Output.WriteJson(record);
            }
            else if (!json)
            {
                if (EnvDiffCommand.Snapshot(spec.Directory) is { } after && PackageDiff.ChangeLine(before, after) is { } change)
                {
                    AnsiConsole.Console.WriteLine(change);
                }

                WriteChecks(record.Checks);
                AnsiConsole.Console.MarkupLine(
                    $"[green]✓[/] {Markup.Escape(record.Image)} ({Output.Size(record.SizeBytes)}) "
                    + (record.Cached ? "was up to date" : $"built in {record.Seconds:F0} s") + $"; log: {Markup.Escape(record.LogPath ?? "-")}");
            }

            if (registry is not null)
            {
                var pushed = await EnvPushCommand.PushAsync(s, spec.Name, registry, json, write: !json, ct);
                if (json)
                {
                    Output.WriteJson(new { build = record, push = pushed });
                }
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    /// <summary>Adapts build progress to a line of text; synchronous, so lines keep their order.</summary>
    private sealed class Progress(Action<string> say) : IProgress<BuildProgress>
    {
        public void Report(BuildProgress value) =>
            say(value.Steps > 0 ? $"step {value.Step}/{value.Steps}: {value.Text}" : value.Text);
    }

    private static Command Test()
    {
        var arg = new Argument<string>("image") { Description = "Image, or environment name (its :latest image)", DefaultValueFactory = _ => EnvironmentLocator.Default };
        var format = Output.FormatOption();
        var cmd = new Command("test", "Run an image's in-image checks again (offline)") { arg, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            await s.Docker.EnsureEngineAsync(ct);
            var image = EnvironmentLocator.ImageFor(p.GetValue(arg)!);
            var json = Output.IsJson(p, format);
            var results = await Output.WithProgressAsync(json, $"checking {image}", say => s.Checks.RunAsync(image, null, null, ct));
            var failed = results.Count(r => !r.Passed);
            if (json)
            {
                Output.WriteJson(new { image, passed = results.Count - failed, failed, checks = results });
            }
            else
            {
                WriteChecks(results);
                AnsiConsole.Console.MarkupLine(failed == 0
                    ? $"[green]✓[/] {results.Count} checks passed in {Markup.Escape(image)}"
                    : $"[red]✗[/] {failed} of {results.Count} checks failed in {Markup.Escape(image)}");
            }

            return failed == 0 ? ExitCodes.Ok : ExitCodes.Checks;
        }, ct));
        return cmd;
    }

    private static void WriteChecks(IReadOnlyList<CheckResult> results)
    {
        if (results.Count == 0)
        {
            return;
        }

        var table = new Table().Border(TableBorder.Simple).AddColumns("", "check", "result", "time");
        foreach (var r in results)
        {
            table.AddRow(r.Passed ? "[green]✓[/]" : "[red]✗[/]", Markup.Escape(r.Id.Length > 60 ? r.Id[..60] + "…" : r.Id),
                Markup.Escape(r.Passed ? r.Detail : r.Detail.Split('\n')[^1]), $"{r.Seconds:F1}s");
        }

        AnsiConsole.Console.Write(table);
    }

    private static Command Inspect()
    {
        var arg = new Argument<string>("image") { Description = "Image, or environment name (its :latest image)", DefaultValueFactory = _ => EnvironmentLocator.Default };
        var format = Output.FormatOption();
        var all = new Option<bool>("--all-packages") { Description = "List every package (text output shows the 25 largest otherwise)" };
        var cmd = new Command("inspect", "Show an image's package manifest (SBOM), size, kernels and checks") { arg, format, all };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            await s.Docker.EnsureEngineAsync(ct);
            var report = await s.Inspector.InspectAsync(EnvironmentLocator.ImageFor(p.GetValue(arg)!), ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(report);
                return ExitCodes.Ok;
            }

            var grid = new Grid().AddColumn().AddColumn();
            void Row(string k, string v) => grid.AddRow($"[bold]{k}[/]", Markup.Escape(v));
            Row("image", report.Image);
            Row("environment", report.Environment);
            Row("size", Output.Size(report.SizeBytes));
            Row("created", report.Created.ToString("u"));
            Row("lock", report.Lock);
            Row("gpu", report.Gpu);
            Row("kernels", string.Join(", ", report.Kernels));
            Row("packages", $"{report.Packages.Count} ({Output.Size(report.Packages.Sum(x => x.InstalledKiB) * 1024)} installed)");
            if (report.Build is { } b)
            {
                Row("checks", $"{b.Checks.Count(c => c.Passed)}/{b.Checks.Count} passed ({b.StartedAt:u})");
            }

            AnsiConsole.Console.Write(grid);
            var rows = p.GetValue(all) ? report.Packages : report.Packages.OrderByDescending(x => x.InstalledKiB).Take(25).ToList();
            var table = new Table().Border(TableBorder.Simple).AddColumns("package", "version", "size");
            foreach (var pkg in rows)
            {
                table.AddRow(Markup.Escape(pkg.Name), Markup.Escape(pkg.Version), Output.Size(pkg.InstalledKiB * 1024));
            }

            table.Caption(p.GetValue(all) ? "all packages" : $"25 largest of {report.Packages.Count} packages (--all-packages for all)");
            AnsiConsole.Console.Write(table);
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command List()
    {
        var format = Output.FormatOption();
        var cmd = new Command("list", "List built environment images and the curated environments") { format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            await s.Docker.EnsureEngineAsync(ct);
            var images = await s.Inspector.ListAsync(ct);
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(new { images, curated = EnvironmentLocator.Curated().Select(c => new { c.Name, c.Directory }) });
                return ExitCodes.Ok;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("environment", "image", "size", "created", "checks");
            foreach (var i in images)
            {
                table.AddRow(Markup.Escape(i.Environment), Markup.Escape(i.Image), Output.Size(i.SizeBytes), i.Created.ToString("u"), Markup.Escape(i.Checks));
            }

            if (images.Count == 0)
            {
                AnsiConsole.Console.WriteLine("no environment images built yet: try `dsvm env build minimal`");
            }
            else
            {
                AnsiConsole.Console.Write(table);
            }

            AnsiConsole.Console.WriteLine("curated: " + string.Join(", ", EnvironmentLocator.Curated().Select(c => c.Name)));
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    private static Command Toolsets()
    {
        var format = Output.FormatOption();
        var cmd = new Command("toolsets", "List the toolsets a spec can name") { format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, _ =>
        {
            var catalog = Dsvm.Core.Specs.ToolsetCatalog.Default;
            if (Output.IsJson(p, format))
            {
                Output.WriteJson(catalog.All);
                return Task.FromResult(ExitCodes.Ok);
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("toolset", "description", "packages");
            foreach (var t in catalog.All)
            {
                table.AddRow(Markup.Escape(t.Name), Markup.Escape(t.Description), Markup.Escape(string.Join(" ", t.Packages)));
            }

            AnsiConsole.Console.Write(table);
            return Task.FromResult(ExitCodes.Ok);
        }, ct));
        return cmd;
    }

    private static Command Export()
    {
        var arg = new Argument<string>("env") { Description = "Environment name (its :latest image) or image", DefaultValueFactory = _ => EnvironmentLocator.Default };
        var format = Output.FormatOption();
        var diskFormat = new Option<string>("--format") { Description = "Disk format: qcow2 or raw", DefaultValueFactory = _ => "qcow2" };
        diskFormat.AcceptOnlyFromAmong("qcow2", "raw");
        // Not --output: that is the text|json option of every command.
        var output = new Option<string?>("--file", "-f") { Description = "Disk file to write (default: DATA/disks/ENV-TAG.FORMAT)" };
        var cmd = new Command("export", "Turn a built environment image into a bootable VM disk (kernel, systemd, Jupyter on boot)") { arg, diskFormat, output, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            var exporter = new DiskExporter(s.Docker, s.Paths);
            var image = EnvironmentLocator.ImageFor(p.GetValue(arg)!);
            var options = new DiskExportOptions
            {
                Format = p.GetValue(diskFormat) == "raw" ? DiskFormat.Raw : DiskFormat.Qcow2,
                Output = p.GetValue(output) is { Length: > 0 } o ? Path.GetFullPath(o) : null,
            };
            var json = Output.IsJson(p, format);
            var disk = await Output.WithProgressAsync(json, $"exporting {image}", say => exporter.ExportAsync(image, options, say, ct));
            if (json)
            {
                Output.WriteJson(disk);
            }
            else
            {
                AnsiConsole.Console.MarkupLine(
                    $"[green]✓[/] {Markup.Escape(disk.Path)} ({disk.Format.ToString().ToLowerInvariant()}, {Output.Size(disk.FileBytes)} on disk, "
                    + $"{Output.Size(disk.VirtualBytes)} virtual, kernel {Markup.Escape(disk.Kernel)}) in {disk.Seconds:F0} s");
                AnsiConsole.Console.WriteLine("boot it: see docs/vm.md (config drive labelled CIDATA with dsvm.conf; Jupyter on port 8888)");
            }

            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }
}
