using System.Net;
using System.Text.RegularExpressions;
using Dsvm.Core;

namespace Dsvm.Images.Registry;

/// <summary>
/// An OCI registry: <c>host[:port]</c> (as in image references) and the base address of its HTTP API. A bare
/// <c>host[:port]</c> means HTTPS, except on loopback (127.0.0.0/8, localhost, ::1), which Docker also reaches
/// without TLS; <c>http://</c> or <c>https://</c> in front says it explicitly.
/// </summary>
public sealed partial record RegistryAddress(string Host, Uri BaseUri)
{
    /// <summary>Environments live under this namespace of the registry: <c>HOST/dsvm/NAME</c>.</summary>
    public const string Namespace = "dsvm";

    /// <summary><see cref="Parse"/> without the error: false for an empty or bad address.</summary>
    public static bool TryParse(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RegistryAddress? address)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        try
        {
            address = Parse(value);
            return true;
        }
        catch (UsageException)
        {
            return false;
        }
    }

    public static RegistryAddress Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var text = value.Trim();
        string? scheme = null;
        foreach (var s in new[] { "http://", "https://" })
        {
            if (text.StartsWith(s, StringComparison.OrdinalIgnoreCase))
            {
                scheme = s[..^3].ToLowerInvariant();
                text = text[s.Length..].TrimEnd('/');
            }
        }

        var m = HostPattern().Match(text);
        if (!m.Success || !ushort.TryParse(m.Groups["port"].Value is { Length: > 0 } p ? p : "443", out var port) || port == 0)
        {
            throw new UsageException(
                $"'{value}' is not a registry address: use host:port or a domain name (e.g. 127.0.0.1:5000, registry.example.org), optionally with http:// or https://");
        }

        var host = m.Groups["host"].Value.ToLowerInvariant();

        // Docker reads "name/dsvm/x" as a Docker Hub path unless the first part has a '.' or ':' or is localhost.
        if (!host.Contains('.', StringComparison.Ordinal) && host != "localhost" && m.Groups["port"].Length == 0)
        {
            throw new UsageException(
                $"'{value}' is not a registry address: a host without a port or a dot would be read as a Docker Hub name; use host:port (e.g. {host}:5000)");
        }

        scheme ??= IsLoopback(host) ? "http" : "https";
        var uri = new Uri($"{scheme}://{text.ToLowerInvariant()}/");
        return new RegistryAddress(text.ToLowerInvariant(), uri);
    }

    public static bool IsLoopback(string host) =>
        host == "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>The repository of an environment: <c>HOST/dsvm/NAME</c>.</summary>
    public string Repository(string environment) => $"{Host}/{RepositoryPath(environment)}";

    /// <summary>The repository's path inside the registry (the HTTP API's name): <c>dsvm/NAME</c>.</summary>
    public static string RepositoryPath(string environment) => $"{Namespace}/{environment}";

    /// <summary>A reference that names exactly one image: <c>HOST/dsvm/NAME@sha256:…</c>.</summary>
    public string ByDigest(string environment, string digest) =>
        IsDigest(digest) ? $"{Repository(environment)}@{digest}" : throw new ArgumentException($"'{digest}' is not a sha256 digest", nameof(digest));

    public string ByTag(string environment, string tag) => $"{Repository(environment)}:{tag}";

    public static bool IsDigest(string value) => DigestPattern().IsMatch(value);

    public override string ToString() => Host;

    [GeneratedRegex(@"^(?<host>[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::(?<port>[0-9]{1,5}))?\z")]
    private static partial Regex HostPattern();

    [GeneratedRegex(@"^sha256:[0-9a-f]{64}\z")]
    private static partial Regex DigestPattern();
}
