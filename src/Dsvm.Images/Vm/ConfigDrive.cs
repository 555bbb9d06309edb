using System.Text;
using System.Text.RegularExpressions;
using Dsvm.Core;

namespace Dsvm.Images.Vm;

/// <summary>What a machine learns from its config drive at boot.</summary>
public sealed record VmConfig
{
    public required string InstanceId { get; init; }
    public required string Hostname { get; init; }
    public required string Token { get; init; }
    public string User { get; init; } = DockerfileRenderer.UserName;
    public string BaseUrl { get; init; } = "/";

    /// <summary>The home disk's device in the guest (the qemu backend gives it the serial <c>dsvm-home</c>).</summary>
    public string? HomeDevice { get; init; }
}

/// <summary>
/// The config drive: a small FAT file system labelled <c>CIDATA</c> (the cloud-init NoCloud label) holding
/// <c>meta-data</c> (NoCloud's instance-id and local-hostname) and <c>dsvm.conf</c> (KEY=VALUE lines read by the
/// guest's dsvm-config service). Made with mkfs.fat and mcopy: no mount, no loop device.
/// </summary>
public static partial class ConfigDrive
{
    public const string Label = "CIDATA";
    public const string ConfFile = "dsvm.conf";
    public const string MetaDataFile = "meta-data";

    /// <summary>The drive's files; every value is validated so the guest's parser never sees anything odd.</summary>
    public static IReadOnlyDictionary<string, string> Render(VmConfig config)
    {
        Check(UserPattern(), config.User, "user name", "1-32 lowercase letters, digits, '_' or '-', starting with a letter or '_'");
        Check(HostPattern(), config.Hostname, "hostname", "1-63 lowercase letters, digits and '-'");
        Check(TokenPattern(), config.Token, "Jupyter token", "8-128 letters, digits, '_' or '-'");
        Check(BaseUrlPattern(), config.BaseUrl, "base URL", "a path starting and ending with '/' (letters, digits, '.', '_', '~', '-')");
        Check(InstancePattern(), config.InstanceId, "instance id", "letters, digits, '.', '_' or '-'");
        if (config.HomeDevice is { } dev && !DevicePattern().IsMatch(dev))
        {
            throw new UsageException($"'{dev}' is not a valid home device: use a /dev/... path");
        }

        var conf = new StringBuilder()
            .Append("# OpenDSVM machine configuration (read by dsvm-config at every boot)\n")
            .Append("DSVM_USER=").Append(config.User).Append('\n')
            .Append("DSVM_HOSTNAME=").Append(config.Hostname).Append('\n')
            .Append("JUPYTER_TOKEN=").Append(config.Token).Append('\n')
            .Append("DSVM_BASE_URL=").Append(config.BaseUrl).Append('\n');
        if (config.HomeDevice is not null)
        {
            conf.Append("DSVM_HOME_DEVICE=").Append(config.HomeDevice).Append('\n');
        }

        return new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [MetaDataFile] = $"instance-id: {config.InstanceId}\nlocal-hostname: {config.Hostname}\n",
            [ConfFile] = conf.ToString(),
        };
    }

    /// <summary>Writes the drive image (1 MiB FAT12, mode 0600: it holds the token).</summary>
    public static async Task WriteAsync(string path, VmConfig config, CancellationToken ct)
    {
        var files = Render(config);
        var tmp = path + ".tmp";
        File.Delete(tmp);
        await HostTools.RunAsync("mkfs.fat", ["-n", Label, "-C", tmp, "1024"], ct);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var dir = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".config-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var (name, text) in files)
            {
                var local = Path.Combine(dir, name);
                await File.WriteAllTextAsync(local, text, ct);
                await HostTools.RunAsync("mcopy", ["-o", "-i", tmp, local, "::" + name], ct);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        File.Move(tmp, path, overwrite: true);
    }

    private static void Check(Regex pattern, string value, string what, string rule)
    {
        if (!pattern.IsMatch(value))
        {
            throw new UsageException($"'{value}' is not a valid {what} for a machine: use {rule}");
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_-]{0,31}\\z")]
    private static partial Regex UserPattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}\\z")]
    private static partial Regex HostPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]{8,128}\\z")]
    private static partial Regex TokenPattern();

    [GeneratedRegex("^/([A-Za-z0-9._~-]+/)*\\z")]
    private static partial Regex BaseUrlPattern();

    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}\\z")]
    private static partial Regex InstancePattern();

    [GeneratedRegex("^/dev/[A-Za-z0-9._/-]+\\z")]
    private static partial Regex DevicePattern();
}
