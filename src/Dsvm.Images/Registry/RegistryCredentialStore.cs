using System.Text.Json;
using Dsvm.Core;

namespace Dsvm.Images.Registry;

/// <summary>
/// Registry credentials come from configuration, never from the command line (where other users of the machine
/// would see them in the process list): the environment variables <c>DSVM_REGISTRY_USERNAME</c> and
/// <c>DSVM_REGISTRY_PASSWORD</c> (for every registry), else the file <c>DATA/registries.json</c>
/// (<c>{"127.0.0.1:5000": {"username": "…", "password": "…"}}</c>, readable by its owner only).
/// </summary>
public static class RegistryCredentialStore
{
    public const string FileName = "registries.json";

    public const string UsernameVariable = "DSVM_REGISTRY_USERNAME";

    public const string PasswordVariable = "DSVM_REGISTRY_PASSWORD";

    public static RegistryLogin? Find(DsvmPaths paths, RegistryAddress registry)
    {
        var user = Environment.GetEnvironmentVariable(UsernameVariable);
        var password = Environment.GetEnvironmentVariable(PasswordVariable);
        if (!string.IsNullOrEmpty(user) || !string.IsNullOrEmpty(password))
        {
            if (string.IsNullOrEmpty(user) || string.IsNullOrEmpty(password))
            {
                throw new UsageException($"set both {UsernameVariable} and {PasswordVariable}, or neither");
            }

            return new RegistryLogin(user, password);
        }

        var file = Path.Combine(paths.Data, FileName);
        return File.Exists(file) ? FromFile(file, registry) : null;
    }

    internal static RegistryLogin? FromFile(string file, RegistryAddress registry)
    {
        if (!OperatingSystem.IsWindows()
            && (File.GetUnixFileMode(file) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new UsageException($"{file} holds passwords but other users can read or write it; run `chmod 600 {file}`");
        }

        Dictionary<string, Entry>? entries;
        try
        {
            entries = JsonSerializer.Deserialize<Dictionary<string, Entry>>(File.ReadAllText(file), JsonOptions);
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{file}: line {(ex.LineNumber ?? 0) + 1}: not a map of registry → {{\"username\", \"password\"}}: {ex.Message.Split('.')[0]}");
        }

        var entry = entries?.FirstOrDefault(e => string.Equals(e.Key.Trim(), registry.Host, StringComparison.OrdinalIgnoreCase)).Value;
        if (entry is null)
        {
            return null;
        }

        if (string.IsNullOrEmpty(entry.Username) || string.IsNullOrEmpty(entry.Password))
        {
            throw new UsageException($"{file}: key {registry.Host}: both \"username\" and \"password\" are required");
        }

        return new RegistryLogin(entry.Username, entry.Password);
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };

    private sealed record Entry(string? Username, string? Password);
}
