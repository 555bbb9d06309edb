using System.Diagnostics;
using Dsvm.Core.Workspaces;
using Microsoft.Data.Sqlite;

namespace Dsvm.Data.Tests;

/// <summary>
/// A damaged state file is a one-line <see cref="StateFileException"/> naming the file and what to do, never a raw
/// SQLite/EF exception; a corrupt one is moved aside (kept) so the next command starts clean.
/// </summary>
public sealed class StateFileFaultTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "dsvm-statefile-" + Guid.NewGuid().ToString("N")[..12]);

    private string File_ => Path.Combine(_dir, "dsvm.db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Chattr("-i", File_);
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<Workspace> SeedAsync()
    {
        var store = new SqliteWorkspaceStore(File_);
        var w = await store.SaveAsync(new Workspace
        {
            Id = "ws-0123456789ab", Name = "proj", Owner = "local", Environment = "minimal", Image = "i", Size = "small", Backend = "docker",
            HomeVolume = "dsvm-home-local-proj", Token = "t", State = WorkspaceState.Stopped, CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        SqliteConnection.ClearAllPools();
        return w;
    }

    private void Sql(string sql)
    {
        using (var c = new SqliteConnection($"Data Source={File_};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            cmd.ExecuteNonQuery();
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>Opens the store and reads: the fault shows at one of them.</summary>
    private async Task<StateFileException> FaultAsync() =>
        await Assert.ThrowsAsync<StateFileException>(async () => await new SqliteWorkspaceStore(File_).ListAsync(null, CancellationToken.None));

    private void AssertMovedAside(StateFileException ex, byte[]? original = null)
    {
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains(File_, ex.Message, StringComparison.Ordinal);
        Assert.Contains("dsvm doctor --repair", ex.Message, StringComparison.Ordinal);
        var aside = Assert.Single(Directory.GetFiles(_dir, "dsvm.db.corrupt-*"), f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal));
        Assert.Contains(aside, ex.Message, StringComparison.Ordinal);
        if (original is not null)
        {
            Assert.Equal(original, File.ReadAllBytes(aside));
        }

        // The next command starts with an empty, working file.
        Assert.Empty(new SqliteWorkspaceStore(File_).ListAsync(null, CancellationToken.None).GetAwaiter().GetResult());
    }

    [Fact]
    public async Task Garbage_IsMovedAside()
    {
        Directory.CreateDirectory(_dir);
        var garbage = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("this is not a database ", 400)));
        await File.WriteAllBytesAsync(File_, garbage);

        AssertMovedAside(await FaultAsync(), garbage);
    }

    /// <summary>
    /// The store opens in the background (CLI start-up), but a corrupt file is moved aside only by an operation that
    /// then reports it: a command that never reads the state (<c>dsvm sizes</c>) leaves the file where it is.
    /// </summary>
    [Fact]
    public async Task A_store_never_used_leaves_a_corrupt_file_in_place()
    {
        Directory.CreateDirectory(_dir);
        var garbage = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("this is not a database ", 400)));
        await File.WriteAllBytesAsync(File_, garbage);

        _ = new SqliteWorkspaceStore(File_);
        await Task.Delay(TimeSpan.FromSeconds(2)); // the background open has failed by now (it takes well under a second)

        Assert.Equal(garbage, await File.ReadAllBytesAsync(File_));
        Assert.Empty(Directory.GetFiles(_dir, "dsvm.db.corrupt-*"));
        AssertMovedAside(await FaultAsync(), garbage);
    }

    [Fact]
    public async Task Truncated_IsMovedAside()
    {
        await SeedAsync();
        Sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;");
        var bytes = await File.ReadAllBytesAsync(File_);
        var truncated = bytes[..(bytes.Length / 2 + 100)];
        await File.WriteAllBytesAsync(File_, truncated);

        AssertMovedAside(await FaultAsync(), truncated);
    }

    [Fact]
    public async Task DroppedTable_IsMovedAside()
    {
        await SeedAsync();
        Sql("DROP TABLE workspaces;");

        AssertMovedAside(await FaultAsync());
    }

    [Fact]
    public async Task UnknownStateName_IsMovedAside()
    {
        await SeedAsync();
        Sql("UPDATE workspaces SET State = 'Exploded';");

        AssertMovedAside(await FaultAsync());
    }

    [Fact]
    public async Task BackendStateThatIsNotJson_IsMovedAside()
    {
        await SeedAsync();
        Sql("UPDATE workspaces SET BackendState = '{\"container\": ';");

        AssertMovedAside(await FaultAsync());
    }

    [Fact]
    public async Task ADirectory_IsNamedAndLeftAlone()
    {
        Directory.CreateDirectory(File_);

        var ex = await FaultAsync();

        Assert.Contains($"state file {File_} is a directory", ex.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(File_));
        Assert.Empty(Directory.GetFiles(_dir, "dsvm.db.corrupt-*"));
    }

    [Fact]
    public async Task ReadOnly_IsNamed_AndNotMoved()
    {
        var w = await SeedAsync();
        Sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;");
        MakeReadOnly(File_);

        var ex = await Assert.ThrowsAsync<StateFileException>(() => new SqliteWorkspaceStore(File_).SaveAsync(w with { Size = "large" }, CancellationToken.None));

        Assert.Contains($"state file {File_} cannot be written", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Empty(Directory.GetFiles(_dir, "dsvm.db.corrupt-*"));
        Assert.True(File.Exists(File_));
    }

    /// <summary>chmod does not stop root: as root the file is made immutable instead.</summary>
    private static void MakeReadOnly(string file)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead);
        }

        if (Environment.UserName == "root")
        {
            Chattr("+i", file);
        }
    }

    private static void Chattr(string flag, string file)
    {
        if (Environment.UserName != "root" || !File.Exists(file))
        {
            return;
        }

        using var p = Process.Start(new ProcessStartInfo("chattr", [flag, file]) { RedirectStandardError = true })!;
        p.WaitForExit();
    }
}
