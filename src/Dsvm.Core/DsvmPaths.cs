namespace Dsvm.Core;

/// <summary>
/// Where OpenDSVM keeps its files. <c>DSVM_HOME</c> puts everything under one folder (tests use it);
/// otherwise the XDG data and cache folders are used.
/// </summary>
public sealed record DsvmPaths(string Data, string Cache)
{
    public string Logs => Path.Combine(Data, "logs");
    public string Builds => Path.Combine(Data, "builds");
    public string Database => Path.Combine(Data, "dsvm.db");
    public string BaseCache => Path.Combine(Cache, "base");

    public static DsvmPaths FromEnvironment()
    {
        var home = Environment.GetEnvironmentVariable("DSVM_HOME");
        if (!string.IsNullOrEmpty(home))
        {
            return new DsvmPaths(Path.Combine(home, "data"), Path.Combine(home, "cache"));
        }

        var user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var data = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } d ? d : Path.Combine(user, ".local", "share");
        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } c ? c : Path.Combine(user, ".cache");
        return new DsvmPaths(Path.Combine(data, "opendsvm"), Path.Combine(cache, "opendsvm"));
    }

    public DsvmPaths EnsureCreated()
    {
        foreach (var dir in new[] { Data, Cache, Logs, Builds, BaseCache })
        {
            Directory.CreateDirectory(dir);
        }

        return this;
    }
}
