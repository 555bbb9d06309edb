using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace Dsvm.Images;

/// <summary>One file of a build context.</summary>
public sealed record ContextFile(string Path, byte[] Content, bool Executable = false);

/// <summary>
/// An in-memory Docker build context. It is written as a tar with fixed owners and times, so the same inputs give
/// byte-identical contexts and the engine's layer cache hits.
/// </summary>
public sealed class BuildContext
{
    private static readonly DateTimeOffset FixedTime = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly SortedDictionary<string, ContextFile> _files = new(StringComparer.Ordinal);

    public IEnumerable<ContextFile> Files => _files.Values;

    public void Add(string path, string text, bool executable = false) =>
        Add(new ContextFile(path, Encoding.UTF8.GetBytes(text), executable));

    public void Add(ContextFile file) => _files[file.Path] = file;

    public bool Contains(string path) => _files.ContainsKey(path);

    public string Text(string path) => Encoding.UTF8.GetString(_files[path].Content);

    /// <summary>Adds a folder of the environment directory under <paramref name="prefix"/>.</summary>
    public void AddDirectory(string source, string prefix)
    {
        if (File.Exists(source))
        {
            Add(new ContextFile(prefix, File.ReadAllBytes(source), IsExecutable(source)));
            return;
        }

        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = System.IO.Path.GetRelativePath(source, file).Replace('\\', '/');
            if (relative.Split('/').Any(p => p is ".ipynb_checkpoints" or "__pycache__"))
            {
                continue;
            }

            Add(new ContextFile($"{prefix}/{relative}", File.ReadAllBytes(file), IsExecutable(file)));
        }
    }

    private static bool IsExecutable(string file) =>
        !OperatingSystem.IsWindows() && (File.GetUnixFileMode(file) & UnixFileMode.UserExecute) != 0;

    /// <summary>sha256 over paths, modes and contents.</summary>
    public string Digest()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in _files.Values)
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{f.Path}\0{(f.Executable ? 755 : 644)}\0{f.Content.Length}\0"));
            hash.AppendData(f.Content);
        }

        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void WriteTar(Stream output)
    {
        using var writer = new TarWriter(output, TarEntryFormat.Ustar, leaveOpen: true);
        foreach (var f in _files.Values)
        {
            var entry = new UstarTarEntry(TarEntryType.RegularFile, f.Path)
            {
                Mode = f.Executable
                    ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                      | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
                    : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                ModificationTime = FixedTime,
                Uid = 0,
                Gid = 0,
                DataStream = new MemoryStream(f.Content, writable: false),
            };
            writer.WriteEntry(entry);
        }
    }

    /// <summary>Writes the context out as files (kept beside the build log, for debugging a build by hand).</summary>
    public void WriteTo(string directory)
    {
        foreach (var f in _files.Values)
        {
            var path = System.IO.Path.Combine(directory, f.Path);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, f.Content);
        }
    }
}
