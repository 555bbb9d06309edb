namespace Dsvm.Core;

/// <summary>An exclusive lock on a file, across processes (two builds of one base wait for each other).</summary>
public sealed class FileGate : IAsyncDisposable
{
    private readonly FileStream _stream;

    private FileGate(FileStream stream) => _stream = stream;

    public static async Task<FileGate> AcquireAsync(string path, CancellationToken ct, Action? onWait = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var waited = false;
        while (true)
        {
            try
            {
                return new FileGate(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException)
            {
                if (!waited)
                {
                    waited = true;
                    onWait?.Invoke();
                }

                await Task.Delay(100, ct);
            }
        }
    }

    /// <summary>The lock if nobody holds it now (this process included), else null; never waits.</summary>
    public static FileGate? TryAcquire(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            return new FileGate(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
