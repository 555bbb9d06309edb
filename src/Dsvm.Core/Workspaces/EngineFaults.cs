using System.Net.Sockets;

namespace Dsvm.Core.Workspaces;

/// <summary>
/// Recognises a fault of a workspace engine's API client (Docker.DotNet, the Kubernetes client) that the backend did
/// not turn into a <see cref="DsvmException"/> itself, so the CLI and the hub can answer one clear line (a 503 in the
/// hub) instead of a stack trace or a 500. Only faults that come from those clients count: an
/// <see cref="HttpRequestException"/> of anything else (the hub client, a Jupyter probe) is not an engine fault.
/// </summary>
public static class EngineFaults
{
    /// <summary>"Docker" or "Kubernetes" when <paramref name="ex"/> is such a fault; null otherwise.</summary>
    public static string? EngineOf(Exception ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var chain = Chain(ex).ToList();
        if (!chain.Any(e => e is HttpRequestException or SocketException or IOException or TimeoutException || ClientEngine(e) is not null))
        {
            return null;
        }

        return chain.Select(ClientEngine).FirstOrDefault(e => e is not null)
            ?? chain.Select(e => e.StackTrace ?? "").Select(t =>
                t.Contains("at Docker.DotNet.", StringComparison.Ordinal) ? "Docker"
                : t.Contains("at k8s.", StringComparison.Ordinal) ? "Kubernetes" : null).FirstOrDefault(e => e is not null);
    }

    /// <summary>True when the engine could not be reached at all (no answer), false when it answered with an error.</summary>
    public static bool IsUnreachable(Exception ex) =>
        Chain(ex).Any(e => e is HttpRequestException or SocketException or IOException or TimeoutException);

    /// <summary>
    /// An engine that accepted the request and did not answer within <paramref name="waited"/> (a hung daemon: the
    /// kernel still accepts connections on its socket): a not-ready error naming the engine, its endpoint, the wait and
    /// what to do.
    /// </summary>
    public static EnvironmentNotReadyException NotAnswering(string engine, string endpoint, TimeSpan waited, string check) =>
        new($"the {engine} engine at {endpoint} did not answer within {Seconds(waited)} s; check that it runs and is not stuck ({check}) "
            + "or raise request-timeout for the backend in backends.yaml; `dsvm doctor` checks every backend");

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// What a user may read about <paramref name="ex"/>: the engine's kind and whether it answered, never its endpoint
    /// (the log has that); a <see cref="DsvmException"/>'s own first line; null for anything that is not an engine's fault.
    /// </summary>
    public static string? ForUsers(Exception ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        if (ex is DsvmException dsvm)
        {
            return dsvm.Message.Split('\n')[0];
        }

        var engine = EngineOf(ex);
        var unreachable = IsUnreachable(ex);
        return engine is null && !unreachable ? null
            : unreachable ? $"the {engine ?? "workspace"} engine is not reachable"
            : $"the {engine} engine answered an error";
    }

    /// <summary>The innermost message: what actually failed (e.g. "Connection refused").</summary>
    public static string Reason(Exception ex)
    {
        var chain = Chain(ex).ToList();
        var messages = chain.Select(e => e.Message.Split('\n')[0].Trim()).Where(m => m.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        var text = string.Join(": ", messages.TakeLast(2));
        return text.Length > 300 ? text[..300] + "…" : text;
    }

    private static string? ClientEngine(Exception e) => e.GetType().Namespace switch
    {
        { } ns when ns.StartsWith("Docker.DotNet", StringComparison.Ordinal) => "Docker",
        { } ns when ns == "k8s" || ns.StartsWith("k8s.", StringComparison.Ordinal) => "Kubernetes",
        _ => null,
    };

    private static IEnumerable<Exception> Chain(Exception ex)
    {
        for (var e = ex; e is not null; e = e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : e.InnerException)
        {
            yield return e;
        }
    }
}
