using System.Net.Http.Headers;

namespace Dsvm.Core.Workspaces;

/// <summary>Asks a Jupyter server whether it is up: <c>GET {base}api/status</c> with the server token.</summary>
public interface IReadinessProbe
{
    Task<bool> IsReadyAsync(Uri endpoint, string baseUrl, string token, CancellationToken ct);
}

public sealed class HttpReadinessProbe(HttpClient http) : IReadinessProbe
{
    /// <summary>A probe with its own client: no cookies (a login cookie must never stand in for the token), no proxy.</summary>
    public HttpReadinessProbe()
        : this(CreateClient()) { }

    public static HttpClient CreateClient() =>
        new(new SocketsHttpHandler { UseCookies = false, UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
        {
            Timeout = TimeSpan.FromSeconds(5),
        };

    public async Task<bool> IsReadyAsync(Uri endpoint, string baseUrl, string token, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint, baseUrl.TrimStart('/') + "api/status"));
        request.Headers.Authorization = new AuthenticationHeaderValue("token", token);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
