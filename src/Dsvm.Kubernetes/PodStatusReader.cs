using Dsvm.Core;
using k8s.Models;

namespace Dsvm.Kubernetes;

/// <summary>What a pod's phase and container statuses mean for a workspace.</summary>
/// <param name="Running">The server process runs (the manager's probe decides whether it answers).</param>
/// <param name="Failure">Set when waiting longer will not help (bad image, crash loop, unschedulable, exited).</param>
/// <param name="Unschedulable">The scheduler found no node: may clear when volumes bind or nodes are added.</param>
public sealed record PodView(bool Running, string Detail, WorkspaceFailure? Failure = null, bool Unschedulable = false);

/// <summary>Reads a pod's status into one clear line (pure: unit-tested on status objects).</summary>
public static class PodStatusReader
{
    private static readonly HashSet<string> ImageErrors = new(StringComparer.Ordinal)
    {
        "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable", "ImageInspectError",
    };

    private static readonly HashSet<string> ConfigErrors = new(StringComparer.Ordinal)
    {
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError", "PostStartHookError",
    };

    public static PodView Read(V1Pod pod)
    {
        var status = pod.Status;
        var container = status?.ContainerStatuses?.FirstOrDefault(c => c.Name == KubernetesObjects.ContainerName)
            ?? status?.ContainerStatuses?.FirstOrDefault();
        var node = pod.Spec?.NodeName;
        if (pod.Metadata?.DeletionTimestamp is not null)
        {
            return new PodView(false, "terminating");
        }

        if (container?.State?.Waiting is { } waiting)
        {
            var reason = waiting.Reason ?? "";
            var message = Shorten(waiting.Message);
            if (ImageErrors.Contains(reason))
            {
                return new PodView(false, $"image pull failed ({reason}){(message.Length > 0 ? ": " + message : "")}", WorkspaceFailure.Image);
            }

            if (reason == "CrashLoopBackOff")
            {
                var code = container.LastState?.Terminated?.ExitCode;
                return new PodView(false, $"crash loop: the server keeps exiting{(code is null ? "" : $" (last exit code {code})")}", WorkspaceFailure.Backend);
            }

            if (ConfigErrors.Contains(reason))
            {
                return new PodView(false, $"cannot create the container ({reason}){(message.Length > 0 ? ": " + message : "")}", WorkspaceFailure.Backend);
            }
        }

        if (container?.State?.Terminated is { } terminated || status?.Phase is "Failed" or "Succeeded")
        {
            var t = container?.State?.Terminated;
            var detail = t is null ? "exited" : $"exited, exit code {t.ExitCode}";
            if (t?.Reason == "OOMKilled")
            {
                detail += ", killed: out of memory";
            }

            if (status?.Reason is { Length: > 0 } podReason)
            {
                detail += $" ({podReason}{(status.Message is { Length: > 0 } m ? ": " + Shorten(m) : "")})";
            }

            return new PodView(false, detail, WorkspaceFailure.Backend);
        }

        var scheduled = status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
        if (scheduled is { Status: "False" } && scheduled.Reason == "Unschedulable")
        {
            return new PodView(false, $"not schedulable: {Shorten(scheduled.Message)}", WorkspaceFailure.Capacity, Unschedulable: true);
        }

        if (status?.Phase == "Running" && container?.State?.Running is not null)
        {
            return new PodView(true, node is { Length: > 0 } ? $"running on node {node}" : "running");
        }

        if (status?.Phase == "Unknown")
        {
            return new PodView(false, $"unknown: the node{(node is null ? "" : " " + node)} does not report");
        }

        var why = container?.State?.Waiting?.Reason ?? (node is null ? "waiting for a node" : "starting");
        return new PodView(false, $"pending: {why}");
    }

    /// <summary>The scheduler's message up to its preemption note, on one line.</summary>
    private static string Shorten(string? message)
    {
        if (message is null)
        {
            return "";
        }

        var s = message.ReplaceLineEndings(" ").Trim();
        var cut = s.IndexOf(" preemption:", StringComparison.Ordinal);
        if (cut > 0)
        {
            s = s[..cut].TrimEnd();
        }

        return s.Length > 300 ? s[..300] + "..." : s;
    }
}
