using System.CommandLine;
using Dsvm.Cli;
using Spectre.Console;

if (Console.IsOutputRedirected)
{
    // Logs and pipes: no wrapping at 80 columns.
    AnsiConsole.Profile.Width = 200;
}

var root = new RootCommand("OpenDSVM: self-hosted data-science virtual machines (environments as code, workspaces, hub)");
root.Subcommands.Add(EnvCommands.Create());
root.Subcommands.Add(HubCommands.Create());
foreach (var command in WorkspaceCommands.Create().Concat(RemoteCommands.Create()))
{
    root.Subcommands.Add(command);
}

return await root.Parse(args).InvokeAsync();
