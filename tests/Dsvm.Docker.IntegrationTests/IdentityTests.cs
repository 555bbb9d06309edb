using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>
/// Issue 9, finding 1: engine objects are named from IDs, so names that concatenate alike
/// (<c>alice</c> + <c>x-data</c> and <c>alice-x</c> + <c>data</c>) never share a container, a home or a lock.
/// </summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class IdentityTests
{
    private readonly WorkspaceStack _stack = new();

    private Task<Workspace> UpAsync(string owner, string ownerId, string name, string image) =>
        _stack.Manager.UpAsync(new CreateWorkspaceRequest
        {
            Name = name, Owner = owner, OwnerId = ownerId, Environment = "minimal", Image = image, GpuMode = GpuMode.None, Size = "small",
        }, null, default);

    private Task<WorkspaceExecResult> ExecAsync(Workspace w, params string[] command) =>
        _stack.Backend.ExecAsync(w.Handle, new WorkspaceExecRequest { Command = command, Timeout = TimeSpan.FromSeconds(30), OutputLimitBytes = 65536 }, default);

    private async Task CleanupAsync(string owner, string name)
    {
        try
        {
            await _stack.Manager.DeleteAsync(owner, name, deleteHome: true, null, default);
        }
        catch (NotFoundException)
        {
        }
    }

    [DockerFact]
    public async Task OwnersWhoseNamesConcatenateAlikeGetTheirOwnContainerHomeAndLock()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        await CleanupAsync("alice", "x-data");
        await CleanupAsync("alice-x", "data");
        try
        {
            var alice = await UpAsync("alice", "u-a11ce0000001", "x-data", record.Image);
            Assert.Equal(0, (await ExecAsync(alice, "sh", "-c", "echo alice-secret > secret.txt")).ExitCode);

            var other = await UpAsync("alice-x", "u-a11ce0000002", "data", record.Image);

            Assert.NotEqual(alice.HomeVolume, other.HomeVolume);
            Assert.NotEqual(alice.ContainerId, other.ContainerId);
            Assert.Equal($"dsvm-{alice.Id}", (await WorkspaceStack.Docker.RunAsync(["inspect", "--format", "{{.Name}}", alice.ContainerId!], default)).Stdout.Trim().TrimStart('/'));
            Assert.Equal($"dsvm-home-{alice.HomeId}", alice.HomeVolume);
            var labels = (await WorkspaceStack.Docker.RunAsync(["inspect", "--format",
                "{{index .Config.Labels \"io.opendsvm.owner-id\"}}|{{index .Config.Labels \"io.opendsvm.home\"}}|{{index .Config.Labels \"io.opendsvm.owner\"}}", alice.ContainerId!], default)).Stdout.Trim();
            Assert.Equal($"u-a11ce0000001|{alice.HomeId}|alice", labels);
            var homeLabels = (await WorkspaceStack.Docker.RunAsync(["volume", "inspect", "--format",
                "{{index .Labels \"io.opendsvm.owner-id\"}}|{{index .Labels \"io.opendsvm.home\"}}", alice.HomeVolume], default)).Stdout.Trim();
            Assert.Equal($"u-a11ce0000001|{alice.HomeId}", homeLabels);

            // alice's server survived the other start, and exec/logs reach the right container.
            var status = await _stack.Backend.GetStatusAsync((await _stack.Manager.GetAsync("alice", "x-data", default)).Handle, default);
            Assert.True(status.Running);
            // The engine's own start time (what an adopted record's uptime counts from): between the record's creation and its readiness.
            Assert.InRange(status.StartedAt!.Value, alice.CreatedAt.AddSeconds(-1), alice.StartedAt!.Value);
            Assert.Equal("alice-secret\n", (await ExecAsync(alice, "cat", "secret.txt")).Stdout);
            Assert.NotEqual(0, (await ExecAsync(other, "cat", "secret.txt")).ExitCode);
            Assert.Equal("x-data\n", (await ExecAsync(alice, "sh", "-c", "echo $DSVM_WORKSPACE")).Stdout);
            Assert.Equal("data\n", (await ExecAsync(other, "sh", "-c", "echo $DSVM_WORKSPACE")).Stdout);

            // The locks are distinct: one owner's operation does not wait on the other's.
            var locks = Directory.GetFiles(Path.Combine(_stack.Paths.Data, "locks")).Select(Path.GetFileName).ToList();
            Assert.Contains("alice.x-data.lock", locks);
            Assert.Contains("alice-x.data.lock", locks);

            // Deleting the other one with its home leaves alice's home and server alone.
            await _stack.Manager.DeleteAsync("alice-x", "data", deleteHome: true, null, default);
            Assert.True(await _stack.Backend.HomeExistsAsync(alice.HomeVolume, default));
            Assert.False(await _stack.Backend.HomeExistsAsync(other.HomeVolume, default));
            Assert.Equal("alice-secret\n", (await ExecAsync(alice, "cat", "secret.txt")).Stdout);
        }
        finally
        {
            await CleanupAsync("alice", "x-data");
            await CleanupAsync("alice-x", "data");
        }
    }
}
