using System.CommandLine;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Services;
using Dsvm.Images;
using Microsoft.Extensions.Hosting;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm hub serve</c>: the multi-user hub on this machine's engine.</summary>
public static class HubCommands
{
    public static Command Create()
    {
        var hub = new Command("hub", "The multi-user hub: REST API, web UI and authenticating proxy to each workspace");
        var listen = new Option<string>("--listen") { Description = "Address to listen on", DefaultValueFactory = _ => new HubOptions().Listen };
        var idle = new Option<int?>("--idle-timeout") { Description = "Minutes of inactivity (the server's own report) before a workspace is stopped" };
        var database = new Option<string?>("--database") { Description = "PostgreSQL for the hub's state (postgres://… or \"Host=…;Database=…\"; env DSVM_HUB_DATABASE); default SQLite in the data folder" };
        var adminAccess = new Option<bool>("--admin-access")
        {
            Description = "Let admins open every user's workspace (they share the hub's origin with the user's code: trusted users only)",
        };
        var config = new Option<string?>("--config") { Description = "A JSON file with a \"Hub\" section (DSVM__Hub__… environment variables win over it; see docs/hub.md)" };
        var serve = new Command("serve", "Run the hub in the foreground (Ctrl-C stops the hub; workspaces keep running)") { listen, idle, database, adminAccess, config };
        serve.SetAction((p, ct) => Output.RunAsync(p, null, async ct =>
        {
            // Settings from --config and DSVM__Hub__… (OpenID Connect, trusted proxies, quotas, …); the flags win when given.
            // Checked first (unknown keys too), before anything connects.
            var configuration = HubConfiguration.Load(p.GetValue(config));
            var configured = HubConfiguration.Bind(configuration);
            var paths = DsvmPaths.FromEnvironment().EnsureCreated();
            ImageServices images = null!;
            var gpus = new NvidiaGpuDetector();
            var registry = BackendFactory.Registry(paths, gpus, () => images,
                BackendFactory.HubLogins(paths, configured.Registry.Url, configured.Registry.Username, configured.Registry.Password,
                    configured.Registry.PullAddress));
            var options = configured with
            {
                Listen = p.GetResult(listen) is { Implicit: false } ? p.GetValue(listen)! : configured.Listen,
                AdminPassword = Environment.GetEnvironmentVariable("DSVM_HUB_ADMIN_PASSWORD") ?? configured.AdminPassword,
                AdminAccess = p.GetValue(adminAccess) || configured.AdminAccess,
                IdleTimeout = p.GetValue(idle) is { } minutes ? TimeSpan.FromMinutes(minutes) : configured.IdleTimeout,
            };
            var sizes = WorkspaceServices.LoadSizes(paths);
            var (backendConfig, backends) = BackendFactory.Load(paths, sizes, registry);
            images = BackendFactory.ImagesOn(paths, backendConfig);

            // This machine's engine only when a configured backend runs on it (a hub on a cluster has none).
            if (registry.UsesLocalEngine(backendConfig))
            {
                await images.Docker.EnsureEngineAsync(ct);
            }

            var state = HubDatabase.Open(HubDatabase.Configured(p.GetValue(database), configuration), paths);
            var app = HubHost.Build(options, new HubDependencies
            {
                AccountsDb = state.AccountsDb,
                Backends = backends,
                Store = state.Store,
                Gpus = gpus,
                Environments = HubEnvironmentCatalogs.Create(options.Registry, () => HubEnvironments.For(backendConfig, registry, images),
                    registry.UsesLocalEngine(backendConfig), TimeProvider.System),
                Paths = paths,
                Sizes = sizes,
            });
            var password = await HubHost.InitializeAsync(app, ct);
            if (password is not null)
            {
                AnsiConsole.Console.MarkupLine($"[yellow]first start:[/] created user [bold]{Markup.Escape(options.AdminName)}[/] with password [bold]{Markup.Escape(password)}[/] (shown once; change it with POST /api/v1/me/password)");
            }

            await app.StartAsync(ct);
            AnsiConsole.Console.MarkupLine($"[green]✓[/] hub state: {Markup.Escape(state.Description)}");
            AnsiConsole.Console.MarkupLine($"[green]✓[/] hub listening on {Markup.Escape(string.Join(", ", app.Urls))}; open {Markup.Escape(app.Urls.First())}/hub/");
            await app.WaitForShutdownAsync(ct);
            return ExitCodes.Ok;
        }, ct));
        hub.Subcommands.Add(serve);
        return hub;
    }
}

/// <summary>Where the hub's environments come from: the one place that chooses the catalog.</summary>
public static class HubEnvironments
{
    /// <summary>
    /// The images of this machine's engine when a configured backend runs on it; else none (a hub on a cluster
    /// never touches a local engine).
    /// </summary>
    public static IEnvironmentCatalog For(BackendConfig config, BackendRegistry registry, ImageServices images) =>
        registry.UsesLocalEngine(config) ? new DockerEnvironmentCatalog(images) : new StaticEnvironmentCatalog([]);
}

/// <summary>The hub's environments: images built here (dsvm/ENV:latest), with their GPU mode from their labels.</summary>
public sealed class DockerEnvironmentCatalog(ImageServices images) : IEnvironmentCatalog
{
    public async Task<IReadOnlyList<HubEnvironment>> ListAsync(CancellationToken ct)
    {
        var result = new List<HubEnvironment>();
        foreach (var group in (await images.Inspector.ListAsync(ct)).GroupBy(i => i.Environment))
        {
            var image = $"dsvm/{group.Key}:latest";
            if (!await images.Docker.ImageExistsAsync(image, ct))
            {
                continue;
            }

            var gpu = await images.Docker.ImageLabelAsync(image, "io.opendsvm.gpu", ct) switch
            {
                "optional" => GpuMode.Optional,
                "required" => GpuMode.Required,
                _ => GpuMode.None,
            };
            var description = await images.Docker.ImageLabelAsync(image, "io.opendsvm.description", ct) ?? "";
            result.Add(new HubEnvironment(group.Key, image, gpu, description, group.First().SizeBytes));
        }

        return result;
    }
}
