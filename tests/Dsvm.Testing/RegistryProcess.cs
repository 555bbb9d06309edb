using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Dsvm.Testing;

/// <summary>
/// A real registry (Debian's <c>docker-registry</c>, distribution 2.8) on 127.0.0.1 (or another local address) and
/// a free port, with its own configuration and storage in a temporary folder, optionally behind htpasswd (bcrypt)
/// authentication. Docker trusts 127.0.0.0/8 registries without TLS, so the engine can push to it. A second process
/// can serve the same storage and logins at another address (the swarm lab's nodes see the host at its bridge).
/// </summary>
public sealed class RegistryProcess : IAsyncDisposable
{
    public const string Binary = "/usr/bin/docker-registry";

    private readonly Process _process;
    private readonly TempDir _dir;
    private readonly StringBuilder _log = new();

    private RegistryProcess(Process process, TempDir dir, string address, int port, (string User, string Password)? credentials, string storage)
    {
        _process = process;
        _dir = dir;
        Address = address;
        Port = port;
        Credentials = credentials;
        Storage = storage;
    }

    public string Address { get; }

    public int Port { get; }

    /// <summary><c>ADDRESS:PORT</c> (<c>127.0.0.1:PORT</c> by default), as in image references.</summary>
    public string Host => $"{Address}:{Port}";

    /// <summary>The folder holding the registry's data and its htpasswd file.</summary>
    private string Storage { get; }

    public (string User, string Password)? Credentials { get; }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <param name="credentials">The one login the registry accepts; none: anonymous.</param>
    /// <param name="address">A local address to listen on (loopback, or a bridge of this machine the test created).</param>
    /// <param name="sameAs">Serve that registry's storage with its login, at <paramref name="address"/> on another port.</param>
    public static async Task<RegistryProcess> StartAsync((string User, string Password)? credentials = null, string address = "127.0.0.1", RegistryProcess? sameAs = null)
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException($"{Binary} is missing: apt-get install docker-registry (scripts/host-setup.sh --tests installs it)");
        }

        var dir = new TempDir();
        var port = FreePort();
        var storage = sameAs?.Storage ?? dir.Path;
        credentials = sameAs is null ? credentials : sameAs.Credentials;
        var auth = "";
        if (credentials is { } c)
        {
            if (sameAs is null)
            {
                dir.Write("htpasswd", $"{c.User}:{BCrypt.Net.BCrypt.HashPassword(c.Password, workFactor: 5)}\n");
            }

            auth = $"auth:\n  htpasswd:\n    realm: dsvm-test\n    path: {Path.Combine(storage, "htpasswd")}\n";
        }

        var config = dir.Write("config.yml",
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            + $"storage:\n  filesystem:\n    rootdirectory: {Path.Combine(storage, "data")}\n  delete:\n    enabled: true\n"
            + $"http:\n  addr: {address}:{port}\n" + auth);
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add(config);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("docker-registry did not start");
        var registry = new RegistryProcess(process, dir, address, port, credentials, storage);
        process.OutputDataReceived += (_, e) => registry.Append(e.Data);
        process.ErrorDataReceived += (_, e) => registry.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient();
        for (var i = 0; i < 200; i++)
        {
            if (process.HasExited)
            {
                break;
            }

            try
            {
                using var r = await http.GetAsync(new Uri($"http://{registry.Host}/v2/"));
                if (r.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized)
                {
                    return registry;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(50);
        }

        var log = registry.Log;
        await registry.DisposeAsync();
        throw new InvalidOperationException($"docker-registry did not answer on {registry.Host}:\n{log}");
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>
    /// Uploads an image without Docker: a config blob with these labels, one small layer and a manifest of the
    /// given media type (OCI or Docker v2 schema 2). Returns the manifest digest.
    /// </summary>
    public async Task<string> UploadImageAsync(string repository, string tag, IReadOnlyDictionary<string, string> labels, bool oci = true)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{Host}/") };
        if (Credentials is { } c)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.User}:{c.Password}")));
        }

        var configBytes = JsonSerializer.SerializeToUtf8Bytes(new
        {
            architecture = Dsvm.Images.Registry.RegistryManifest.CurrentArchitecture,
            os = "linux",
            created = "2026-12-06T00:00:00Z",
            config = new { Labels = labels },
            rootfs = new { type = "layers", diff_ids = Array.Empty<string>() },
        });
        var layerBytes = Encoding.UTF8.GetBytes("not a real layer: never pulled\n");
        var configDigest = await UploadBlobAsync(http, repository, configBytes);
        var layerDigest = await UploadBlobAsync(http, repository, layerBytes);
        var mediaType = oci ? "application/vnd.oci.image.manifest.v1+json" : "application/vnd.docker.distribution.manifest.v2+json";
        var manifest = JsonSerializer.SerializeToUtf8Bytes(new
        {
            schemaVersion = 2,
            mediaType,
            config = new { mediaType = oci ? "application/vnd.oci.image.config.v1+json" : "application/vnd.docker.container.image.v1+json", size = configBytes.Length, digest = configDigest },
            layers = new[] { new { mediaType = oci ? "application/vnd.oci.image.layer.v1.tar" : "application/vnd.docker.image.rootfs.diff.tar", size = layerBytes.Length, digest = layerDigest } },
        });
        using var content = new ByteArrayContent(manifest);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        using var put = await http.PutAsync(new Uri($"v2/{repository}/manifests/{tag}", UriKind.Relative), content);
        put.EnsureSuccessStatusCode();
        return Digest(manifest);
    }

    private static async Task<string> UploadBlobAsync(HttpClient http, string repository, byte[] bytes)
    {
        var digest = Digest(bytes);
        using var start = await http.PostAsync(new Uri($"v2/{repository}/blobs/uploads/", UriKind.Relative), null);
        start.EnsureSuccessStatusCode();
        var location = start.Headers.Location!.ToString();
        var url = location + (location.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "digest=" + Uri.EscapeDataString(digest);
        using var body = new ByteArrayContent(bytes);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var put = await http.PutAsync(new Uri(url, UriKind.RelativeOrAbsolute), body);
        put.EnsureSuccessStatusCode();
        return digest;
    }

    private static string Digest(byte[] bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
        _dir.Dispose();
    }
}
