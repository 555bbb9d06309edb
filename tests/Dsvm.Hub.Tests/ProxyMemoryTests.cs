using System.Net;
using System.Net.Http.Headers;

namespace Dsvm.Hub.Tests;

[CollectionDefinition(nameof(ProxyMemoryTests), DisableParallelization = true)]
public sealed class ProxyMemoryCollection;

/// <summary>
/// The proxy streams what it does not have to rewrite. The hub runs in this test process; the test resets the
/// process's peak RSS (writing 5 to /proc/self/clear_refs), fetches a 200 MB HTML file through the proxy (the
/// fake Jupyter generates it as it sends, the client reads it in 64 KiB pieces), and compares the peak (VmHWM)
/// with the RSS before. It runs alone (no other test in parallel), so the peak is this transfer's.
/// </summary>
[Collection(nameof(ProxyMemoryTests))]
public sealed class ProxyMemoryTests : HubTestBase
{
    private const long FileBytes = 200L * 1000 * 1000;
    private const long AllowedGrowthBytes = 50L * 1024 * 1024;

    [Fact]
    public async Task A_200_MB_html_file_through_files_raises_the_hubs_RSS_by_less_than_50_MB()
    {
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        // Warm up the path (JIT, connection pools) with a small file first.
        await FetchAsync(alice, 1_000_000);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        await File.WriteAllTextAsync("/proc/self/clear_refs", "5");
        var before = Status("VmRSS");
        var received = await FetchAsync(alice, FileBytes);
        var peak = Status("VmHWM");

        Assert.Equal(FileBytes, received);
        Assert.True(peak - before < AllowedGrowthBytes, $"RSS {before / 1048576} MiB before, peak {peak / 1048576} MiB during the transfer");
    }

    private static async Task<long> FetchAsync(HubClient c, long size)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"user/alice/ws1/files/big-{size}.html");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/html"));
        using var r = await c.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await using var body = await r.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long total = 0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            total += read;
        }

        return total;
    }

    /// <summary>A /proc/self/status field in bytes (the kernel gives kB).</summary>
    private static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
