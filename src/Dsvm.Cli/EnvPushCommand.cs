using System.CommandLine;
using Dsvm.Core;
using Dsvm.Images;
using Dsvm.Images.Registry;
using Spectre.Console;

namespace Dsvm.Cli;

/// <summary><c>dsvm env push NAME REGISTRY</c> and the <c>--push REGISTRY</c> option of <c>env build</c>.</summary>
public static class EnvPushCommand
{
    public static Option<string?> PushOption() => new("--push")
    {
        Description = "After a successful build, push the image to this registry as REGISTRY/dsvm/NAME:TAG (credentials from configuration: see docs/environments.md)",
    };

    public static Command Create()
    {
        var name = new Argument<string>("env") { Description = "Environment name (its built dsvm/NAME:latest image is pushed)" };
        var registry = new Argument<string>("registry") { Description = "Registry address: host:port or a domain name, optionally with http:// or https://" };
        var format = Output.FormatOption();
        var cmd = new Command("push", "Push a built, checked environment image to a registry (labels: description, GPU mode, lock digest, check results)") { name, registry, format };
        cmd.SetAction((p, ct) => Output.RunAsync(p, format, async ct =>
        {
            var s = BackendFactory.Images(DsvmPaths.FromEnvironment());
            var address = RegistryAddress.Parse(p.GetValue(registry)!);
            await s.Docker.EnsureEngineAsync(ct);
            await PushAsync(s, p.GetValue(name)!, address, Output.IsJson(p, format), write: true, ct);
            return ExitCodes.Ok;
        }, ct));
        return cmd;
    }

    /// <summary>Pushes and prints the pinned reference (the digest every node will pull).</summary>
    public static async Task<PushResult> PushAsync(ImageServices s, string environment, RegistryAddress registry, bool json, bool write, CancellationToken ct)
    {
        var credentials = RegistryCredentialStore.Find(s.Paths, registry);
        var pusher = new RegistryPusher(s.Docker, s.Records);
        var result = await Output.WithProgressAsync(json, $"pushing {environment} to {registry.Host}", say => pusher.PushAsync(environment, registry, credentials, say, ct));
        if (json && write)
        {
            Output.WriteJson(result);
        }
        else if (write)
        {
            AnsiConsole.Console.MarkupLine(
                $"[green]✓[/] pushed {Markup.Escape(result.Reference)} ({result.ChecksPassed}/{result.ChecksTotal} checks passed): {Markup.Escape(result.PinnedReference)}");
        }

        return result;
    }
}
