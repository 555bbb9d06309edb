using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Dsvm.Testing;

/// <summary>Pure-Python wheels made by the tests (no PyPI here).</summary>
public static class TestWheels
{
    /// <summary>
    /// A minimal pure-Python wheel: one module (the distribution name) with <c>__version__</c>, METADATA (with
    /// <c>Requires-Dist</c> lines), WHEEL and a hashed RECORD.
    /// </summary>
    public static byte[] Build(string distribution, string version, params string[] requiresDist)
    {
        var metadata = new StringBuilder($"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n");
        foreach (var r in requiresDist)
        {
            metadata.Append("Requires-Dist: ").Append(r).Append('\n');
        }

        var files = new List<(string Path, byte[] Content)>
        {
            ($"{distribution}/__init__.py", Encoding.UTF8.GetBytes($"__version__ = \"{version}\"\n")),
            ($"{distribution}-{version}.dist-info/METADATA", Encoding.UTF8.GetBytes(metadata.ToString())),
            ($"{distribution}-{version}.dist-info/WHEEL", Encoding.UTF8.GetBytes("Wheel-Version: 1.0\nGenerator: dsvm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")),
        };
        var record = new StringBuilder();
        foreach (var (path, content) in files)
        {
            var hash = Convert.ToBase64String(SHA256.HashData(content)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            record.Append(path).Append(",sha256=").Append(hash).Append(',').Append(content.Length).Append('\n');
        }

        var recordPath = $"{distribution}-{version}.dist-info/RECORD";
        record.Append(recordPath).Append(",,\n");
        files.Add((recordPath, Encoding.UTF8.GetBytes(record.ToString())));

        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (path, content) in files)
            {
                var entry = zip.CreateEntry(path);
                entry.LastWriteTime = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var s = entry.Open();
                s.Write(content);
            }
        }

        return stream.ToArray();
    }

    /// <summary>The file name pip expects: <c>name-version-py3-none-any.whl</c>.</summary>
    public static string FileName(string distribution, string version) => $"{distribution}-{version}-py3-none-any.whl";
}

/// <summary>
/// A PEP 503 "simple" index on 127.0.0.1 (a free port), serving wheels the test adds and removes while it runs.
/// Links carry <c>#sha256=</c> as PyPI's do.
/// </summary>
public sealed class PipTestIndex : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public PipTestIndex()
    {
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            Port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
        }

        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}/simple/";

    /// <summary>Adds a wheel; returns its sha256 (hex).</summary>
    public string Add(string distribution, string version, params string[] requiresDist)
    {
        var bytes = TestWheels.Build(distribution, version, requiresDist);
        _files[TestWheels.FileName(distribution, version)] = bytes;
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    public void Remove(string distribution, string version) => _files.TryRemove(TestWheels.FileName(distribution, version), out _);

    private static string Project(string file) => file.Split('-')[0].Replace('_', '-').ToLowerInvariant();

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                Respond(ctx);
            }
            catch (HttpListenerException)
            {
                // The client went away.
            }
        }
    }

    private void Respond(HttpListenerContext ctx)
    {
        var path = ctx.Request.Url?.AbsolutePath ?? "/";
        byte[] body;
        var type = "text/html";
        if (path.StartsWith("/simple/", StringComparison.Ordinal) && path.Length > "/simple/".Length)
        {
            var project = path["/simple/".Length..].TrimEnd('/');
            var links = _files.Where(f => Project(f.Key) == project).OrderBy(f => f.Key, StringComparer.Ordinal)
                .Select(f => $"<a href=\"/files/{f.Key}#sha256={Convert.ToHexStringLower(SHA256.HashData(f.Value))}\">{f.Key}</a><br/>\n");
            body = Encoding.UTF8.GetBytes($"<!DOCTYPE html><html><body>\n{string.Concat(links)}</body></html>\n");
        }
        else if (path.StartsWith("/files/", StringComparison.Ordinal) && _files.TryGetValue(path["/files/".Length..], out var file))
        {
            body = file;
            type = "application/octet-stream";
        }
        else
        {
            ctx.Response.StatusCode = 404;
            body = "not found"u8.ToArray();
        }

        ctx.Response.ContentType = type;
        ctx.Response.ContentLength64 = body.Length;
        ctx.Response.OutputStream.Write(body);
        ctx.Response.Close();
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
