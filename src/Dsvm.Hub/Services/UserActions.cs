using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Dsvm.Core.Workspaces;
using Microsoft.AspNetCore.Http;

namespace Dsvm.Hub.Services;

/// <summary>
/// What a user did through the proxy that Jupyter's kernels and terminals do not show: changes (PUT, POST, PATCH,
/// DELETE: saving a file, opening a notebook, renaming) that the workspace accepted. Reading (GET: the polling of a
/// tab left open, api/kernels, api/sessions, api/contents listings) is not an action. Kept in memory: after a hub
/// restart a workspace counts from Jupyter's report alone.
/// </summary>
public sealed partial class UserActions(TimeProvider time)
{
    private readonly ConcurrentDictionary<(string Owner, string Name), DateTimeOffset> _last = new();

    /// <summary>Records the request if it is a change the workspace accepted (called after the proxy answered it).</summary>
    public void RecordIfAction(HttpContext ctx)
    {
        var method = ctx.Request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method)
            || ctx.Response.StatusCode is < 200 or >= 400)
        {
            return;
        }

        var m = Route().Match(ctx.Request.Path.Value ?? "");
        if (m.Success)
        {
            _last[(m.Groups[1].Value, m.Groups[2].Value)] = time.GetUtcNow();
        }
    }

    public DateTimeOffset? Last(string owner, string name) => _last.TryGetValue((owner, name), out var t) ? t : null;

    [GeneratedRegex("^/user/([a-z][a-z0-9-]{0,39})/([a-z][a-z0-9-]{0,39})/")]
    private static partial Regex Route();

    /// <summary>Jupyter's report with the user's proxied actions added: the newer of the two is the last activity.</summary>
    public sealed class ActivityClient(IJupyterActivityClient inner, UserActions actions) : IJupyterActivityClient
    {
        public async Task<JupyterActivity?> GetAsync(Workspace w, CancellationToken ct)
        {
            var report = await inner.GetAsync(w, ct);
            return report is not null && actions.Last(w.Owner, w.Name) is { } acted && acted > report.LastActivity
                ? report with { LastActivity = acted }
                : report;
        }
    }
}
