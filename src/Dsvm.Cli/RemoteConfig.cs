using System.Text.Json;
using Dsvm.Core;

namespace Dsvm.Cli;

/// <summary>A login to a hub: its address, the user and an API token (and the token's id, to revoke it on logout).</summary>
public sealed record RemoteLogin(string Url, string? User, string Token, string? TokenId = null)
{
    /// <summary>The hub address without a trailing slash.</summary>
    public string Hub => Url.TrimEnd('/');
}

/// <summary>
/// Where <c>dsvm login</c> keeps its hub login: <c>DIR/remote.json</c> (mode 0600), DIR being
/// <c>$XDG_CONFIG_HOME/opendsvm</c> (default <c>~/.config/opendsvm</c>). <c>DSVM_HUB_URL</c> + <c>DSVM_HUB_TOKEN</c> win over the file.
/// </summary>
public sealed class RemoteConfig(string directory, string? envUrl = null, string? envToken = null)
{
    public const string FileName = "remote.json";

    public string Directory { get; } = directory;

    public string FilePath => System.IO.Path.Combine(Directory, FileName);

    /// <summary>The configuration of this process: its environment variables and XDG config folder.</summary>
    public static RemoteConfig FromEnvironment()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var dir = string.IsNullOrEmpty(xdg)
            ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "opendsvm")
            : System.IO.Path.Combine(xdg, "opendsvm");
        return new RemoteConfig(dir, Environment.GetEnvironmentVariable("DSVM_HUB_URL"), Environment.GetEnvironmentVariable("DSVM_HUB_TOKEN"));
    }

    /// <summary>The active login, or null when the CLI works locally.</summary>
    public RemoteLogin? Load()
    {
        if (!string.IsNullOrEmpty(envUrl) && !string.IsNullOrEmpty(envToken))
        {
            return new RemoteLogin(envUrl, null, envToken);
        }

        if (!File.Exists(FilePath))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<RemoteLogin>(File.ReadAllText(FilePath), JsonSerializerOptions.Web)
                ?? throw new UsageException($"{FilePath} is empty; run `dsvm login` again");
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{FilePath} is not valid JSON ({ex.Message}); run `dsvm login` again or delete it");
        }
    }

    /// <summary>True when the login comes from DSVM_HUB_URL/DSVM_HUB_TOKEN rather than the file.</summary>
    public bool FromVariables => !string.IsNullOrEmpty(envUrl) && !string.IsNullOrEmpty(envToken);

    /// <summary>Writes the login; the file is created readable by its owner only (0600).</summary>
    public void Save(RemoteLogin login)
    {
        System.IO.Directory.CreateDirectory(Directory);
        if (File.Exists(FilePath))
        {
            File.Delete(FilePath);
        }

        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(FilePath, options);
        JsonSerializer.Serialize(stream, login, new JsonSerializerOptions(JsonSerializerOptions.Web) { WriteIndented = true });
    }

    /// <summary>Deletes the stored login; false when there was none.</summary>
    public bool Delete()
    {
        if (!File.Exists(FilePath))
        {
            return false;
        }

        File.Delete(FilePath);
        return true;
    }

    /// <summary>Writes a secret-bearing file (credentials) readable by its owner only.</summary>
    public static void WritePrivateFile(string path, string text)
    {
        if (File.Exists(path))
        {
            File.Delete(path);
        }

        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(text);
    }
}
