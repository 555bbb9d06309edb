using System.Net;
using System.Net.Http.Json;
using Dsvm.Core;
using Dsvm.Hub;

namespace Dsvm.Bench;

/// <summary>What the suites that start workspaces through the hub share: the POST (again after a 429, when Retry-After says) and the wait until Jupyter answers.</summary>
internal static class HubStarts
{
    /// <summary>A hub on a free loopback port with an admin, no idle culling and no quota (the start limit stays at its default).</summary>
    public static HubOptions Options() => new()
    {
        Listen = "http://127.0.0.1:0",
        AdminName = "admin",
        AdminPassword = "bench-admin-password-1",
        IdleTimeout = TimeSpan.Zero,
        DefaultQuota = new Quota { MaxWorkspaces = null, MaxVcpus = null, MaxGpus = null },
    };

    /// <summary>Asks the hub for a workspace; after a 429 (the hub's start limit), again when Retry-After says.</summary>
    public static async Task PostAsync(HttpClient api, string name, string environment, string size, CancellationToken ct)
    {
        while (true)
        {
            using var r = await api.PostAsJsonAsync("api/v1/workspaces", new { name, environment, size }, ct);
            if (r.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await Task.Delay(r.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(5), ct);
                continue;
            }

            if (!r.IsSuccessStatusCode)
            {
                throw new DsvmException($"POST {name}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
            }

            return;
        }
    }

    /// <summary>Asks <paramref name="url"/> every <paramref name="poll"/> until it answers 200; a <see cref="TimeoutException"/> after <paramref name="bound"/>.</summary>
    public static async Task UntilAnswersAsync(HttpClient probe, Uri url, string authorization, TimeSpan poll, TimeSpan bound, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(bound);
        try
        {
            while (true)
            {
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, url);
                    request.Headers.TryAddWithoutValidation("Authorization", authorization);
                    using var r = await probe.SendAsync(request, limit.Token);
                    if (r.StatusCode == HttpStatusCode.OK)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (TaskCanceledException) when (!limit.IsCancellationRequested)
                {
                    // One slow answer (the probe's own timeout): ask again.
                }

                await Task.Delay(poll, limit.Token);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{url} did not answer within {bound.TotalMinutes:0} minutes");
        }
    }
}
