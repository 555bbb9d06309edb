using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Docker.Tests;

public sealed class SqliteWorkspaceStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dsvm-store-tests-").FullName;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private string DatabaseFile => Path.Combine(_dir, "data", "dsvm.db");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private static Workspace Sample(string name = "proj", string owner = "alice", string? id = null) => new()
    {
        Id = id ?? $"ws-{Guid.NewGuid():N}"[..15],
        Name = name,
        Owner = owner,
        Environment = "datascience",
        Image = "dsvm/datascience:sha256-0123",
        Size = "gpu-small",
        Backend = "docker",
        HomeVolume = $"dsvm-home-{owner}-{name}",
        Token = new string('a', 32) + new string('f', 32),
        State = WorkspaceState.Running,
        ContainerId = "3f2a9c0d1b7e",
        Endpoint = "http://127.0.0.1:49153/",
        GpuEnabled = true,
        CpuFallback = true,
        LastError = "found stopped at 2025-01-02 03:04:05Z (exited, exit code 137)",
        CreatedAt = new DateTimeOffset(2025, 1, 2, 3, 4, 5, 678, TimeSpan.FromHours(2)).AddTicks(1234),
        StartedAt = new DateTimeOffset(2025, 1, 2, 3, 5, 0, 1, TimeSpan.FromHours(-5)).AddTicks(9),
        UpdatedAt = new DateTimeOffset(2025, 6, 30, 23, 59, 59, 999, TimeSpan.Zero).AddTicks(9999),
        BackendState = """{"container":"3f2a9c0d1b7e","name":"dsvm-alice-proj","node":{"id":7}}""",
    };

    [Fact]
    public async Task SaveFindListDelete_RoundTripsEveryField()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);
        var ws = await store.SaveAsync(Sample(), CancellationToken.None);
        var found = await store.FindAsync("alice", "proj", CancellationToken.None);

        Assert.NotNull(found);
        Assert.Equal(ws, found);
        // Same instants, and nothing lost below the millisecond.
        Assert.Equal(ws.CreatedAt.UtcTicks, found.CreatedAt.UtcTicks);
        Assert.Equal(ws.StartedAt!.Value.UtcTicks, found.StartedAt!.Value.UtcTicks);
        Assert.Equal(ws.UpdatedAt.UtcTicks, found.UpdatedAt.UtcTicks);
        Assert.Equal(ws.Token, found.Token);
        Assert.Equal(ws.BackendState, found.BackendState);
        Assert.Equal("dsvm-alice-proj", found.Handle.State.GetProperty("name").GetString());

        Assert.Equal([ws], await store.ListAsync(null, CancellationToken.None));
        Assert.Equal([ws], await store.ListAsync("alice", CancellationToken.None));
        Assert.Empty(await store.ListAsync("bob", CancellationToken.None));

        await store.DeleteAsync(ws, CancellationToken.None);

        Assert.Null(await store.FindAsync("alice", "proj", CancellationToken.None));
        Assert.Empty(await store.ListAsync(null, CancellationToken.None));
    }

    [Fact]
    public async Task Save_NullsAndDefaults_RoundTrip()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);
        var ws = Sample() with
        {
            State = WorkspaceState.Pending, ContainerId = null, Endpoint = null, LastError = null, StartedAt = null,
            GpuEnabled = false, CpuFallback = false, BackendState = "{}",
        };

        ws = await store.SaveAsync(ws, CancellationToken.None);

        Assert.Equal(ws, await store.FindAsync("alice", "proj", CancellationToken.None));
    }

    [Fact]
    public async Task Save_SameId_UpdatesInPlace()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);
        var ws = await store.SaveAsync(Sample(), CancellationToken.None);
        var stopped = ws with { State = WorkspaceState.Stopped, ContainerId = null, Endpoint = null, Size = "large", UpdatedAt = ws.UpdatedAt.AddMinutes(1) };

        stopped = await store.SaveAsync(stopped, CancellationToken.None);

        Assert.Equal([stopped], await store.ListAsync(null, CancellationToken.None));
    }

    [Fact]
    public async Task Records_SurviveANewStoreOnTheSameFile()
    {
        var ws = await new SqliteWorkspaceStore(DatabaseFile).SaveAsync(Sample(), CancellationToken.None);

        var reopened = new SqliteWorkspaceStore(DatabaseFile);

        Assert.Equal(ws, await reopened.FindAsync("alice", "proj", CancellationToken.None));
    }

    [Fact]
    public async Task List_FiltersByOwnerAndSortsByOwnerThenName()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);
        foreach (var (owner, name) in new[] { ("bob", "b"), ("alice", "zeta"), ("alice", "alpha"), ("bob", "a") })
        {
            await store.SaveAsync(Sample(name, owner), CancellationToken.None);
        }

        var all = await store.ListAsync(null, CancellationToken.None);
        var alice = await store.ListAsync("alice", CancellationToken.None);

        Assert.Equal(["alice/alpha", "alice/zeta", "bob/a", "bob/b"], all.Select(w => $"{w.Owner}/{w.Name}"));
        Assert.Equal(["alpha", "zeta"], alice.Select(w => w.Name));
    }

    [Fact]
    public async Task OwnerAndName_AreUnique()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);
        await store.SaveAsync(Sample(id: "ws-000000000001"), CancellationToken.None);

        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(Sample(id: "ws-000000000002"), CancellationToken.None));

        // The same name under another owner, or another name for the same owner, is fine.
        await store.SaveAsync(Sample(owner: "bob", id: "ws-000000000003"), CancellationToken.None);
        await store.SaveAsync(Sample(name: "other", id: "ws-000000000004"), CancellationToken.None);
        var found = await store.FindAsync("alice", "proj", CancellationToken.None);
        Assert.Equal("ws-000000000001", found?.Id);
        Assert.Equal(3, (await store.ListAsync(null, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task DatabaseFile_IsReadableByItsOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes only.
        }

        var store = new SqliteWorkspaceStore(DatabaseFile);
        await store.SaveAsync(Sample(), CancellationToken.None);

        Assert.Equal(OwnerOnly, File.GetUnixFileMode(DatabaseFile));
        // In WAL mode recent writes (tokens included) sit in the -wal file: it must be private too.
        Assert.True(File.Exists(DatabaseFile + "-wal"));
        foreach (var side in new[] { DatabaseFile + "-wal", DatabaseFile + "-shm" }.Where(File.Exists))
        {
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(side));
        }
    }

    [Fact]
    public async Task ExistingDatabaseFiles_AreMadeOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes only.
        }

        await new SqliteWorkspaceStore(DatabaseFile).SaveAsync(Sample(), CancellationToken.None);
        var files = new[] { DatabaseFile, DatabaseFile + "-wal", DatabaseFile + "-shm" }.Where(File.Exists).ToList();
        var loose = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        foreach (var f in files)
        {
            File.SetUnixFileMode(f, loose);
        }

        // Opening (done before the store's first operation) makes them owner-only again.
        Assert.NotNull(await new SqliteWorkspaceStore(DatabaseFile).FindAsync("alice", "proj", CancellationToken.None));

        foreach (var f in files)
        {
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(f));
        }
    }

    [Fact]
    public async Task Delete_UnknownId_IsNotAnError()
    {
        var store = new SqliteWorkspaceStore(DatabaseFile);

        await store.DeleteAsync(Sample(id: "ws-nothing") with { Version = 1 }, CancellationToken.None);

        Assert.Empty(await store.ListAsync(null, CancellationToken.None));
    }
}
