using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dsvm.Core;

namespace Dsvm.Images.Registry;

/// <summary>An environment image in a registry: the digest to pull and its labels.</summary>
public sealed record RegistryImage(string Repository, string Tag, string Digest, IReadOnlyDictionary<string, string> Labels, DateTimeOffset? Created, long SizeBytes);

/// <summary>
/// The Registry HTTP API v2 (the OCI distribution spec), read-only: repositories, tags, manifests and image configs.
/// Authentication: none, Basic, or Bearer tokens from the realm the registry names (Docker's token protocol), with
/// the configured credentials. Every call is bounded by <see cref="Timeout"/> on the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed partial class RegistryClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly RegistryLogin? _credentials;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private bool _basic;

    public RegistryClient(RegistryAddress address, RegistryLogin? credentials, TimeProvider? time = null, TimeSpan? timeout = null, HttpMessageHandler? handler = null)
    {
        Address = address;
        _credentials = credentials;
        _time = time ?? TimeProvider.System;
        Timeout = timeout ?? TimeSpan.FromSeconds(15);
        _http = handler is null
            ? new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = true, PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan }
            : new HttpClient(handler, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    public RegistryAddress Address { get; }

    public TimeSpan Timeout { get; }

    /// <summary>Checks that the registry answers the v2 API (and accepts the credentials).</summary>
    public async Task PingAsync(CancellationToken ct)
    {
        using var r = await SendAsync(HttpMethod.Get, "v2/", null, "registry:catalog:*", ct);
    }

    /// <summary>Every repository the registry lists (following its pages), optionally only those under a prefix.</summary>
    public async Task<IReadOnlyList<string>> ListRepositoriesAsync(string? prefix, CancellationToken ct)
    {
        var result = new List<string>();
        var next = "v2/_catalog?n=1000";
        for (var page = 0; next is not null && page < 100; page++)
        {
            using var r = await SendAsync(HttpMethod.Get, next, null, "registry:catalog:*", ct);
            using var doc = await ReadJsonAsync(r, ct);
            if (doc.RootElement.TryGetProperty("repositories", out var repos) && repos.ValueKind == JsonValueKind.Array)
            {
                result.AddRange(repos.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!)
                    .Where(x => prefix is null || x.StartsWith(prefix, StringComparison.Ordinal)));
            }

            next = NextPage(r);
        }

        return result;
    }

    public async Task<IReadOnlyList<string>> ListTagsAsync(string repository, CancellationToken ct)
    {
        using var r = await SendAsync(HttpMethod.Get, $"v2/{repository}/tags/list", null, $"repository:{repository}:pull", ct);
        using var doc = await ReadJsonAsync(r, ct);
        return doc.RootElement.TryGetProperty("tags", out var tags) && tags.ValueKind == JsonValueKind.Array
            ? tags.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToList()
            : [];
    }

    /// <summary>
    /// The image a tag (or digest) names now: the digest to pull (of the manifest or index the registry serves for
    /// it) and the labels of its image config (the linux/this-architecture entry of an index).
    /// </summary>
    public async Task<RegistryImage> GetImageAsync(string repository, string reference, CancellationToken ct)
    {
        var scope = $"repository:{repository}:pull";
        var (body, contentType, digest) = await GetManifestAsync(repository, reference, scope, ct);
        var manifest = RegistryManifest.Parse(body, contentType);
        if (manifest.IsIndex)
        {
            var entry = manifest.PickPlatform(RegistryManifest.CurrentArchitecture)
                ?? throw new RegistryException($"{Address.Host}/{repository}:{reference} has no linux image");
            (body, contentType, _) = await GetManifestAsync(repository, entry.Digest, scope, ct);
            manifest = RegistryManifest.Parse(body, contentType);
            if (manifest.IsIndex)
            {
                throw new RegistryException($"{Address.Host}/{repository}:{reference}: an index inside an index is not supported");
            }
        }

        using var blob = await SendAsync(HttpMethod.Get, $"v2/{repository}/blobs/{manifest.ConfigDigest}", null, scope, ct);
        var bytes = await blob.Content.ReadAsByteArrayAsync(ct);
        if ("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)) != manifest.ConfigDigest)
        {
            throw new RegistryException($"{Address.Host}/{repository}:{reference}: the image config does not match its digest");
        }

        var (labels, created) = RegistryManifest.ParseConfig(Encoding.UTF8.GetString(bytes));
        return new RegistryImage(repository, reference, digest, labels, created, LayersSize(body));
    }

    private async Task<(string Body, string? ContentType, string Digest)> GetManifestAsync(string repository, string reference, string scope, CancellationToken ct)
    {
        using var r = await SendAsync(HttpMethod.Get, $"v2/{repository}/manifests/{reference}", RegistryManifest.Accepted, scope, ct);
        var bytes = await r.Content.ReadAsByteArrayAsync(ct);
        var computed = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (RegistryAddress.IsDigest(reference) && reference != computed)
        {
            throw new RegistryException($"{Address.Host}/{repository}@{reference}: the manifest does not match its digest");
        }

        // The registry's Docker-Content-Digest is the digest of these bytes; computing it is the same and needs no trust.
        return (Encoding.UTF8.GetString(bytes), r.Content.Headers.ContentType?.MediaType, computed);
    }

    private static long LayersSize(string manifestBody)
    {
        using var doc = JsonDocument.Parse(manifestBody);
        return doc.RootElement.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array
            ? layers.EnumerateArray().Sum(l => l.TryGetProperty("size", out var s) && s.TryGetInt64(out var n) ? n : 0)
            : 0;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, IReadOnlyList<string>? accept, string scope, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            var response = await SendOnceAsync(method, path, accept, scope, linked.Token);
            if (response.StatusCode == HttpStatusCode.Unauthorized && await AuthenticateAsync(response, scope, linked.Token))
            {
                response.Dispose();
                response = await SendOnceAsync(method, path, accept, scope, linked.Token);
                if (response.StatusCode == HttpStatusCode.Unauthorized)
                {
                    response.Dispose();
                    throw new RegistryException($"registry {Address.Host} refused the credentials of user '{_credentials?.Username}' (401)");
                }
            }

            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                response.Dispose();
                throw new RegistryException(
                    $"registry {Address.Host} requires credentials: configure them (see docs/environments.md, \"Registry credentials\"), never on the command line");
            }

            if (response.StatusCode == HttpStatusCode.Forbidden)
            {
                response.Dispose();
                throw new RegistryException($"registry {Address.Host} denied access to {path.Split('?')[0]} (403)");
            }

            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                response.Dispose();
                throw new RegistryException($"registry {Address.Host} has no {path.Split('?')[0]} (404)");
            }

            if (!response.IsSuccessStatusCode)
            {
                var status = (int)response.StatusCode;
                response.Dispose();
                throw new RegistryException($"registry {Address.Host} answered {status} to {path.Split('?')[0]}");
            }

            return response;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new RegistryException($"registry {Address.Host} did not answer within {Timeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException ex)
        {
            throw new RegistryException($"registry {Address.Host} is unreachable at {Address.BaseUri}: {ex.Message}");
        }
    }

    private Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, string path, IReadOnlyList<string>? accept, string scope, CancellationToken ct)
    {
        var request = new HttpRequestMessage(method, new Uri(Address.BaseUri, path));
        foreach (var a in accept ?? [])
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(a));
        }

        lock (_gate)
        {
            if (_tokens.TryGetValue(scope, out var token))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            else if (_basic && _credentials is not null)
            {
                request.Headers.Authorization = BasicHeader(_credentials);
            }
        }

        return _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
    }

    /// <summary>Answers a 401 challenge: Basic with the credentials, or a Bearer token from the realm. False when there is nothing to try.</summary>
    private async Task<bool> AuthenticateAsync(HttpResponseMessage response, string scope, CancellationToken ct)
    {
        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
        if (challenge is null)
        {
            return false;
        }

        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (_credentials is null)
            {
                return false;
            }

            lock (_gate)
            {
                _basic = true;
            }

            return true;
        }

        if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var parameters = ChallengeParameter().Matches(challenge.Parameter ?? "")
            .ToDictionary(m => m.Groups[1].Value.ToLowerInvariant(), m => m.Groups[2].Value, StringComparer.Ordinal);
        if (!parameters.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri)
            || realmUri.Scheme is not ("https" or "http"))
        {
            throw new RegistryException($"registry {Address.Host} asked for a token without a usable realm");
        }

        if (realmUri.Scheme == "http" && !RegistryAddress.IsLoopback(realmUri.Host) && _credentials is not null)
        {
            throw new RegistryException($"registry {Address.Host} sends credentials to {realmUri.Host} without TLS; refused");
        }

        var query = new List<string>();
        if (parameters.TryGetValue("service", out var service))
        {
            query.Add("service=" + Uri.EscapeDataString(service));
        }

        query.Add("scope=" + Uri.EscapeDataString(parameters.GetValueOrDefault("scope") ?? scope));
        using var request = new HttpRequestMessage(HttpMethod.Get, new UriBuilder(realmUri) { Query = string.Join('&', query) }.Uri);
        if (_credentials is not null)
        {
            request.Headers.Authorization = BasicHeader(_credentials);
        }

        using var tokenResponse = await _http.SendAsync(request, ct);
        if (tokenResponse.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            throw new RegistryException(_credentials is null
                ? $"registry {Address.Host} requires credentials: configure them (see docs/environments.md, \"Registry credentials\"), never on the command line"
                : $"registry {Address.Host}'s token service refused the credentials of user '{_credentials.Username}'");
        }

        if (!tokenResponse.IsSuccessStatusCode)
        {
            throw new RegistryException($"registry {Address.Host}'s token service answered {(int)tokenResponse.StatusCode}");
        }

        using var doc = await ReadJsonAsync(tokenResponse, ct);
        var token = (doc.RootElement.TryGetProperty("token", out var t) ? t : doc.RootElement.TryGetProperty("access_token", out var a) ? a : default) is { ValueKind: JsonValueKind.String } v
            ? v.GetString()
            : null;
        if (string.IsNullOrEmpty(token))
        {
            throw new RegistryException($"registry {Address.Host}'s token service sent no token");
        }

        lock (_gate)
        {
            _tokens[scope] = token;
        }

        return true;
    }

    private static AuthenticationHeaderValue BasicHeader(RegistryLogin c) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.Username}:{c.Password}")));

    private async Task<JsonDocument> ReadJsonAsync(HttpResponseMessage r, CancellationToken ct)
    {
        try
        {
            return await JsonDocument.ParseAsync(await r.Content.ReadAsStreamAsync(ct), default, ct);
        }
        catch (JsonException)
        {
            throw new RegistryException($"registry {Address.Host} answered {r.RequestMessage?.RequestUri?.AbsolutePath} with something that is not JSON");
        }
    }

    /// <summary>The next page of a paginated list (RFC 5988 <c>Link: &lt;/v2/_catalog?…&gt;; rel="next"</c>), relative to the base.</summary>
    internal static string? NextPage(HttpResponseMessage r)
    {
        if (!r.Headers.TryGetValues("Link", out var links))
        {
            return null;
        }

        var m = NextLink().Match(string.Join(',', links));
        return m.Success && m.Groups[1].Value.StartsWith("/v2/", StringComparison.Ordinal) ? m.Groups[1].Value[1..] : null;
    }

    public void Dispose() => _http.Dispose();

    [GeneratedRegex(@"(\w+)=""([^""]*)""")]
    private static partial Regex ChallengeParameter();

    [GeneratedRegex(@"<([^>]+)>\s*;\s*rel=""?next""?")]
    private static partial Regex NextLink();
}
