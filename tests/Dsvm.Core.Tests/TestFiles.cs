namespace Dsvm.Core.Tests;

/// <summary>The repository root and its curated environments, found from the test binaries.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Environment(string name) => Path.Combine(Root, "environments", name);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OpenDSVM.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"OpenDSVM.slnx not found above {AppContext.BaseDirectory}");
    }
}

/// <summary>A temporary folder, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("dsvm-tests-").FullName;

    /// <summary>Writes a file (creating its folders) and returns its full path.</summary>
    public string Write(string relative, string content)
    {
        var full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        return full;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder must not fail a test.
        }
    }
}
