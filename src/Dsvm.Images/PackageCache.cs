using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Dsvm.Images;

/// <summary>What the package cache did during one build.</summary>
public sealed record PackageCacheStats
{
    /// <summary>Files (.deb and by-hash indexes) served from the cache folder: nothing fetched from the mirror.</summary>
    public int Hits { get; init; }

    /// <summary>Files fetched from the mirror (and stored in the cache).</summary>
    public int Misses { get; init; }

    /// <summary>Requests passed to the mirror uncached (InRelease and other mutable index files).</summary>
    public int PassedThrough { get; init; }

    public long BytesFromCache { get; init; }
    public long BytesFromMirror { get; init; }
    public string Directory { get; init; } = "";
}

/// <summary>
/// The package cache shared by builds on one host: a caching HTTP proxy that lives only while <c>docker build</c>
/// runs, in this process, on 127.0.0.1 (no daemon to install or keep running). The build reaches it through the
/// predefined <c>http_proxy</c> build argument, which Docker keeps out of the image, its history and the layer cache
/// key, so the image and its tag are the same with or without the cache.
/// <para>Only immutable files are cached: <c>pool/…/*.deb</c> (a Debian archive never changes a file of a given
/// name_version_arch) and <c>by-hash/SHA256/&lt;hash&gt;</c> indexes (checked against their hash before they are
/// stored). apt in the build verifies every .deb against the signed Release → Packages hash chain, so a damaged cache
/// file fails the build instead of reaching an image. Other hosts are passed through uncached.</para>
/// </summary>
public sealed partial class PackageCache : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly HttpClient _http;
    private readonly HashSet<string> _mirrors;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<Task> _connections = [];
    private int _hits;
    private int _misses;
    private int _passed;
    private long _bytesFromCache;
    private long _bytesFromMirror;

    private PackageCache(string directory, IEnumerable<Uri> mirrors, HttpMessageHandler? handler)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
        _mirrors = mirrors.Select(m => m.Authority.ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = TimeSpan.FromMinutes(10);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync(_stop.Token);
    }

    public string Directory { get; }

    public int Port { get; }

    public string ProxyUrl => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>What <c>docker build</c> needs to use the cache: the host network (to reach 127.0.0.1) and the proxy.</summary>
    public IReadOnlyList<string> BuildArguments =>
        ["--network", "host", "--build-arg", $"http_proxy={ProxyUrl}", "--build-arg", "no_proxy=localhost,127.0.0.1,::1"];

    public PackageCacheStats Stats => new()
    {
        Hits = _hits, Misses = _misses, PassedThrough = _passed, BytesFromCache = Interlocked.Read(ref _bytesFromCache),
        BytesFromMirror = Interlocked.Read(ref _bytesFromMirror), Directory = Directory,
    };

    /// <summary>
    /// The cache folder for builds: <c>DSVM_PACKAGE_CACHE</c> (a folder, or <c>off</c>), else <c>CACHE/packages</c>.
    /// Null when the cache is off.
    /// </summary>
    public static string? DefaultDirectory(Dsvm.Core.DsvmPaths paths) =>
        Environment.GetEnvironmentVariable("DSVM_PACKAGE_CACHE") switch
        {
            "off" => null,
            { Length: > 0 } dir => Path.GetFullPath(dir),
            _ => Path.Combine(paths.Cache, "packages"),
        };

    /// <summary>Starts the proxy for the given mirrors (only their host:port is forwarded).</summary>
    public static PackageCache Start(string directory, IEnumerable<Uri> mirrors, HttpMessageHandler? handler = null) =>
        new(directory, mirrors, handler);

    /// <summary>
    /// The cache for builds on <paramref name="engine"/>, or null: only an engine on this machine reaches it (its builds
    /// run on the host network, where the cache listens on 127.0.0.1). A remote engine (<c>tcp://</c> to another host)
    /// would find nothing there and fail every <c>apt-get</c>; its builds go to the mirror themselves.
    /// </summary>
    public static PackageCache? StartFor(Uri engine, string? directory, IEnumerable<Uri> mirrors) =>
        directory is not null && OnThisMachine(engine) ? Start(directory, mirrors) : null;

    /// <summary>A local socket, or TCP to a loopback address.</summary>
    public static bool OnThisMachine(Uri engine) =>
        engine.Scheme is "unix" or "npipe" || (engine.Scheme is "tcp" or "http" or "https" && engine.IsLoopback);

    private async Task AcceptAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(ct);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(ServeAsync(client, ct));
            }
        }
    }

    private async Task ServeAsync(TcpClient client, CancellationToken ct)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            while (!ct.IsCancellationRequested)
            {
                // apt pipelines requests on a connection: answering them one by one, in order, keeps HTTP/1.1's order.
                var request = await ReadRequestAsync(stream, ct);
                if (request is null)
                {
                    return;
                }

                var keepAlive = await AnswerAsync(stream, request, ct);
                if (!keepAlive)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or HttpRequestException)
        {
            // The client went away or the build ended: nothing to answer.
        }
    }

    private sealed record Request(string Method, string Target, string Version, Dictionary<string, string> Headers);

    private static async Task<Request?> ReadRequestAsync(NetworkStream stream, CancellationToken ct)
    {
        var line = await ReadLineAsync(stream, ct);
        if (string.IsNullOrEmpty(line))
        {
            return null;
        }

        var parts = line.Split(' ');
        if (parts.Length != 3)
        {
            return null;
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < 100; i++)
        {
            var h = await ReadLineAsync(stream, ct);
            if (h is null)
            {
                return null;
            }

            if (h.Length == 0)
            {
                return new Request(parts[0], parts[1], parts[2], headers);
            }

            var colon = h.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                headers[h[..colon].Trim()] = h[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    /// <summary>One CRLF-terminated line, at most 8 KiB; read byte by byte so no body bytes are consumed.</summary>
    private static async Task<string?> ReadLineAsync(NetworkStream stream, CancellationToken ct)
    {
        var bytes = new List<byte>(128);
        var one = new byte[1];
        while (bytes.Count < 8192)
        {
            if (await stream.ReadAsync(one, ct) == 0)
            {
                return null;
            }

            if (one[0] == '\n')
            {
                return Encoding.ASCII.GetString(bytes.ToArray()).TrimEnd('\r');
            }

            bytes.Add(one[0]);
        }

        return null;
    }

    private async Task<bool> AnswerAsync(NetworkStream stream, Request request, CancellationToken ct)
    {
        var keepAlive = request.Version == "HTTP/1.1"
            && !(request.Headers.TryGetValue("Connection", out var c) && c.Equals("close", StringComparison.OrdinalIgnoreCase));
        if (request.Method != "GET")
        {
            await WriteAsync(stream, 405, "Method Not Allowed", [], null, false, ct);
            return false;
        }

        if (!Uri.TryCreate(request.Target, UriKind.Absolute, out var uri) || uri.Scheme != "http" || uri.AbsolutePath.Contains("/../", StringComparison.Ordinal))
        {
            await WriteAsync(stream, 403, "Forbidden", [], null, false, ct);
            return false;
        }

        // Only the lock's mirror is cached; another http:// host a build step asks for (a pip index, say) is passed through.
        if (_mirrors.Contains(uri.Authority.ToLowerInvariant()) && CacheFileFor(uri) is { } file)
        {
            if (!File.Exists(file))
            {
                await FetchIntoCacheAsync(uri, file, ct);
            }
            else
            {
                Interlocked.Increment(ref _hits);
                Interlocked.Add(ref _bytesFromCache, new FileInfo(file).Length);
            }

            if (File.Exists(file))
            {
                await using var body = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true);
                await WriteAsync(stream, 200, "OK", [("Content-Type", "application/octet-stream")], body, keepAlive, ct);
                return keepAlive;
            }
        }

        // Uncached: pass the request (with its conditional headers) to the mirror and relay the answer.
        Interlocked.Increment(ref _passed);
        using var message = new HttpRequestMessage(HttpMethod.Get, uri);
        foreach (var h in new[] { "If-Modified-Since", "If-None-Match", "Range", "If-Range" })
        {
            if (request.Headers.TryGetValue(h, out var v))
            {
                message.Headers.TryAddWithoutValidation(h, v);
            }
        }

        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, ct);
        var content = await response.Content.ReadAsByteArrayAsync(ct);
        Interlocked.Add(ref _bytesFromMirror, content.Length);
        var headers = new List<(string, string)>();
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (name is "Last-Modified" or "ETag" or "Content-Type" or "Content-Range" or "Accept-Ranges")
            {
                headers.Add((name, string.Join(", ", values)));
            }
        }

        using var ms = new MemoryStream(content, writable: false);
        await WriteAsync(stream, (int)response.StatusCode, response.ReasonPhrase ?? "", headers, ms, keepAlive, ct);
        return keepAlive;
    }

    /// <summary>Downloads to a temporary file and moves it into the cache only when complete (and, for by-hash files, verified).</summary>
    private async Task FetchIntoCacheAsync(Uri uri, string file, CancellationToken ct)
    {
        using var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return;
        }

        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var tmp = $"{file}.{Guid.NewGuid():N}.part";
        try
        {
            long length;
            await using (var output = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                await using var input = await response.Content.ReadAsStreamAsync(ct);
                await input.CopyToAsync(output, ct);
                length = output.Length;
            }

            if ((response.Content.Headers.ContentLength is { } expected && expected != length)
                || (ByHashSha256(uri) is { } hash && !hash.Equals(await Sha256Async(tmp, ct), StringComparison.OrdinalIgnoreCase)))
            {
                return;
            }

            File.Move(tmp, file, overwrite: true);
            Interlocked.Increment(ref _misses);
            Interlocked.Add(ref _bytesFromMirror, length);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static async Task<string> Sha256Async(string file, CancellationToken ct)
    {
        await using var s = File.OpenRead(file);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(s, ct));
    }

    /// <summary>The cache file of an immutable archive file, or null for a file that may change (InRelease, Packages.xz by name).</summary>
    internal string? CacheFileFor(Uri uri)
    {
        var path = uri.AbsolutePath;
        var name = path[(path.LastIndexOf('/') + 1)..];
        var host = uri.Authority.ToLowerInvariant().Replace(':', '_');
        if (path.Contains("/pool/", StringComparison.Ordinal) && DebName().IsMatch(name))
        {
            return Path.Combine(Directory, host, "debs", name);
        }

        return ByHashSha256(uri) is { } hash ? Path.Combine(Directory, host, "by-hash", hash) : null;
    }

    private static string? ByHashSha256(Uri uri)
    {
        var m = ByHash().Match(uri.AbsolutePath);
        return m.Success ? m.Groups[1].Value.ToLowerInvariant() : null;
    }

    private static async Task WriteAsync(NetworkStream stream, int status, string reason, IReadOnlyList<(string Name, string Value)> headers, Stream? body, bool keepAlive, CancellationToken ct)
    {
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (n, v) in headers)
        {
            head.Append(n).Append(": ").Append(v).Append("\r\n");
        }

        head.Append(CultureInfo.InvariantCulture, $"Content-Length: {body?.Length ?? 0}\r\n");
        head.Append(keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), ct);
        if (body is not null)
        {
            await body.CopyToAsync(stream, ct);
        }

        await stream.FlushAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open);
        _http.Dispose();
        _stop.Dispose();
    }

    /// <summary>name_version_arch.deb, with the epoch's ':' URL-encoded as apt asks for it; no path separators.</summary>
    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9.+~_%-]*\.deb\z")]
    private static partial Regex DebName();

    [GeneratedRegex(@"/by-hash/SHA256/([0-9a-fA-F]{64})\z")]
    private static partial Regex ByHash();
}
