using System.Net.Http.Headers;
using System.Text.Json;

namespace Dsvm.Core.Workspaces;

/// <summary>
/// What a Jupyter server says about itself: the latest thing its user did (a kernel message: execution; terminal
/// input; the server's start when there is neither), its kernels, how many of them are executing, and how many kernel
/// connections are open. The server's own <c>last_activity</c> is not used: every API request moves it, so a browser
/// tab polling api/kernels, api/sessions or api/contents would keep an unused server alive forever.
/// </summary>
public sealed record JupyterActivity(DateTimeOffset LastActivity, int Kernels, int BusyKernels, int Connections);

/// <summary>Reads a workspace's activity from its own Jupyter server (never from a proxy's traffic).</summary>
public interface IJupyterActivityClient
{
    /// <summary>The server's own report, or null when it does not answer (not running, not listening).</summary>
    Task<JupyterActivity?> GetAsync(Workspace w, CancellationToken ct);
}

/// <summary>
/// Asks the server with the workspace token: <c>GET {base}api/status</c> (started, connections),
/// <c>GET {base}api/kernels</c> (each kernel's execution_state and last_activity) and <c>GET {base}api/terminals</c>
/// (each terminal's last_activity; a 404 means terminals are off). The lists are asked with <c>no_track_activity</c>
/// so that the culler's own requests do not count as activity.
/// A server that cannot be reached or times out gives null; one that answers an error or an unreadable body throws.
/// </summary>
public sealed class HttpJupyterActivityClient(HttpClient http) : IJupyterActivityClient
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A client of its own: no cookies (only the token authenticates), no proxy.</summary>
    public HttpJupyterActivityClient()
        : this(HttpReadinessProbe.CreateClient()) { }

    public async Task<JupyterActivity?> GetAsync(Workspace w, CancellationToken ct)
    {
        if (w.Endpoint is null || !Uri.TryCreate(w.Endpoint, UriKind.Absolute, out var endpoint))
        {
            return null;
        }

        var root = new Uri(endpoint, w.BaseUrl.TrimStart('/'));
        using var status = await GetJsonAsync(new Uri(root, "api/status"), w.Token, ct);
        if (status is null)
        {
            return null;
        }

        using var kernels = await GetJsonAsync(new Uri(root, "api/kernels?no_track_activity=1"), w.Token, ct);
        if (kernels is null)
        {
            return null;
        }

        JsonDocument? terminals;
        try
        {
            terminals = await GetJsonAsync(new Uri(root, "api/terminals?no_track_activity=1"), w.Token, ct);
        }
        catch (HttpRequestException ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            terminals = null; // the server runs without terminals
        }

        using (terminals)
        {
            return Parse(status.RootElement, kernels.RootElement, terminals?.RootElement);
        }
    }

    /// <summary>Combines the two answers; throws <see cref="InvalidDataException"/> on anything unexpected.</summary>
    internal static JupyterActivity Parse(JsonElement status, JsonElement kernels, JsonElement? terminals = null)
    {
        if (status.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("api/status did not answer a JSON object");
        }

        if (kernels.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException("api/kernels did not answer a JSON array");
        }

        // The floor is the server's start: a server nobody has used since is idle from then on.
        var last = status.TryGetProperty("started", out var started) && started.ValueKind == JsonValueKind.String
            ? IsoTime.Parse(started.GetString()!, "api/status started")
            : (DateTimeOffset?)null;
        if (terminals is { ValueKind: not JsonValueKind.Null } termList)
        {
            if (termList.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidDataException("api/terminals did not answer a JSON array");
            }

            foreach (var term in termList.EnumerateArray())
            {
                if (term.ValueKind == JsonValueKind.Object && term.TryGetProperty("last_activity", out var tla) && tla.ValueKind == JsonValueKind.String)
                {
                    var at = IsoTime.Parse(tla.GetString()!, "api/terminals last_activity");
                    last = last is null || at > last ? at : last;
                }
            }
        }

        int count = 0, busy = 0, kernelConnections = 0;
        foreach (var k in kernels.EnumerateArray())
        {
            if (k.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("api/kernels listed something that is not a kernel");
            }

            count++;
            if (k.TryGetProperty("execution_state", out var state) && state.ValueKind == JsonValueKind.String
                && string.Equals(state.GetString(), "busy", StringComparison.Ordinal))
            {
                busy++;
            }

            if (k.TryGetProperty("last_activity", out var kla) && kla.ValueKind == JsonValueKind.String)
            {
                var t = IsoTime.Parse(kla.GetString()!, "api/kernels last_activity");
                last = last is null || t > last ? t : last;
            }

            if (k.TryGetProperty("connections", out var kc) && kc.TryGetInt32(out var n))
            {
                kernelConnections += n;
            }
        }

        if (last is null)
        {
            throw new InvalidDataException("api/status gave no started time");
        }

        var connections = status.TryGetProperty("connections", out var c) && c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out var sc)
            ? sc
            : kernelConnections;
        return new JupyterActivity(last.Value, count, busy, connections);
    }

    /// <summary>The parsed body of a successful answer; null when the server cannot be reached or does not answer in time.</summary>
    private async Task<JsonDocument?> GetJsonAsync(Uri uri, string token, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("token", token);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(RequestTimeout);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException(
                    $"{uri.AbsolutePath} answered {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
            }

            await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
            try
            {
                return await JsonDocument.ParseAsync(body, default, timeout.Token);
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"{uri.AbsolutePath} answered something that is not JSON: {ex.Message}", ex);
            }
        }
        catch (HttpRequestException ex) when (ex.StatusCode is null)
        {
            return null; // refused, reset, unreachable: nothing is listening there
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null; // no answer in time
        }
    }
}
