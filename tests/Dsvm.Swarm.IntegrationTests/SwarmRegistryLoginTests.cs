using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Swarm.IntegrationTests;

/// <summary>
/// A registry that refuses anonymous pulls (htpasswd, as a hub's own registry usually is): the backend pushes with the
/// login, and each service carries it (<c>--with-registry-auth</c>), so the node Swarm picks can pull. Before, the
/// push went anonymous and the nodes had no credentials at all (docs/hub.md said "not done").
/// </summary>
[Collection("swarm")]
[Trait("Requires", "Docker")]
public sealed class SwarmRegistryLoginTests(SwarmFixture fx)
{
    [SwarmFact]
    public async Task The_push_and_every_nodes_pull_use_the_login_of_a_registry_that_needs_one()
    {
        var login = ("dsvm-lab", "pw-" + Guid.NewGuid().ToString("N")[..12]);
        // One registry (one storage, one htpasswd) seen by the nodes at the lab bridge and by this host's engine on loopback.
        await using var forNodes = await RegistryProcess.StartAsync(login, SwarmLab.Bridge);
        await using var forHost = await RegistryProcess.StartAsync(address: "127.0.0.1", sameAs: forNodes);
        var options = SwarmFixture.LabOptions with { Registry = forNodes.Host, PushRegistry = forHost.Host };
        const string name = "login";
        string? pushedTag = null;
        try
        {
            // Anonymous: the push is refused, in one line naming the image and the registry.
            using (var anonymous = new SwarmWorkspaceBackend(options))
            {
                var refused = await Assert.ThrowsAsync<WorkspaceStartException>(() => anonymous.PushImageAsync(fx.Image, default));
                Assert.StartsWith($"pushing {fx.Image} to {forHost.Host} failed: ", refused.Message, StringComparison.Ordinal);
                Assert.DoesNotContain('\n', refused.Message);
            }

            using var backend = new SwarmWorkspaceBackend(options with
            {
                Logins = host => host == forNodes.Host || host == forHost.Host ? new RegistryLogin(login.Item1, login.Item2) : null,
            });
            var nodeImage = backend.NodeImage(fx.Image);
            pushedTag = $"{forHost.Host}/{fx.Image}";
            await backend.PushImageAsync(fx.Image, default);

            // The registry really refuses a node that comes without the login.
            var anonymousPull = await SwarmLab.DockerAsync(2, ["pull", nodeImage]);
            Assert.False(anonymousPull.IsSuccess, "a node pulled from the login registry without a login");
            Assert.Contains("no basic auth credentials", anonymousPull.StandardError, StringComparison.OrdinalIgnoreCase);

            // Through a service: whichever node Swarm picks pulls with the service's login, and Jupyter answers.
            var manager = SwarmFixture.NewManager(backend, fx.Store, fx.Paths,
                new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300), PollInterval = TimeSpan.FromMilliseconds(200) });
            var w = await manager.UpAsync(new CreateWorkspaceRequest
            {
                Name = name, Owner = SwarmFixture.Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = fx.Image,
                GpuMode = GpuMode.None, Size = SwarmFixture.Tiny.Name,
            }, null, default);
            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.True(await SwarmFixture.AnswersAsync(w), "the workspace from the login registry does not answer");
            var node = SwarmFixture.NodeOf(w);
            var index = await SwarmLab.NodeNumberAsync(node);
            var pulled = await SwarmLab.DockerAsync(index, ["image", "inspect", "--format", "{{.Id}}", nodeImage]);
            Assert.True(pulled.IsSuccess, $"node n{index} has no {nodeImage}: {pulled.StandardError}");
        }
        finally
        {
            if (await fx.Store.FindAsync(SwarmFixture.Owner, name, default) is not null)
            {
                await fx.Manager.DeleteAsync(SwarmFixture.Owner, name, deleteHome: true, null, default);
            }

            if (pushedTag is not null)
            {
                await BuiltEnvironment.Services.Docker.RunAsync(["rmi", pushedTag], CancellationToken.None);
            }
        }
    }
}
