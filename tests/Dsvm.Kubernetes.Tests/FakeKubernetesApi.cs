using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Dsvm.Kubernetes.Tests;

/// <summary>One request as the fake API server saw it.</summary>
public sealed record RecordedRequest(string Method, string Path, string Query, string Body)
{
    public override string ToString() => $"{Method} {Path}{Query}";
}

/// <summary>
/// A small in-memory Kubernetes API server on 127.0.0.1: the core/v1 REST paths the backend calls (pods, services,
/// secrets, persistent volume claims, nodes, pod log, version, namespace), label selectors, 404/409 Status bodies. Pods
/// go Running when created unless a test sets <see cref="PodStatusOnCreate"/>; deleted pods linger
/// <see cref="TerminatingReads"/> reads with a deletionTimestamp, as a real kubelet's graceful stop does.
/// </summary>
public sealed class FakeKubernetesApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, JsonObject> _objects = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _terminating = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private int _uid;

    public string Namespace { get; }

    public string Url { get; private set; } = "";

    public List<JsonObject> Nodes { get; } = [];

    public Dictionary<string, string> Logs { get; } = new(StringComparer.Ordinal);

    /// <summary>The status a new pod gets; null: Running at once.</summary>
    public Func<JsonObject, JsonObject>? PodStatusOnCreate { get; set; }

    /// <summary>How many reads of a new pod answer Pending before it runs.</summary>
    public int PendingReads { get; set; }

    public int TerminatingReads { get; set; } = 1;

    /// <summary>Answers 403 to requests whose "METHOD path" starts with one of these.</summary>
    public HashSet<string> Forbidden { get; } = new(StringComparer.Ordinal);

    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    private FakeKubernetesApi(string ns)
    {
        Namespace = ns;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _app = builder.Build();
        _app.Run(HandleAsync);
    }

    public static async Task<FakeKubernetesApi> StartAsync(string ns = "dsvm-test")
    {
        var api = new FakeKubernetesApi(ns);
        await api._app.StartAsync();
        api.Url = api._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return api;
    }

    public IKubernetes Client() => new k8s.Kubernetes(new KubernetesClientConfiguration { Host = Url });

    public JsonObject? Get(string kind, string name) => _objects.TryGetValue($"{kind}/{name}", out var o) ? o : null;

    public IEnumerable<string> Names(string kind) => _objects.Keys.Where(k => k.StartsWith(kind + "/", StringComparison.Ordinal)).Select(k => k[(kind.Length + 1)..]).Order();

    public IEnumerable<RecordedRequest> Calls(string method, string pathContains) =>
        Requests.Where(r => r.Method == method && r.Path.Contains(pathContains, StringComparison.Ordinal));

    public static JsonObject Node(string name, string cpu, string memory, int gpus = 0, bool ready = true, bool cordoned = false)
    {
        var allocatable = new JsonObject { ["cpu"] = cpu, ["memory"] = memory, ["pods"] = "110" };
        if (gpus > 0)
        {
            allocatable["nvidia.com/gpu"] = gpus.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject { ["unschedulable"] = cordoned },
            ["status"] = new JsonObject
            {
                ["allocatable"] = allocatable,
                ["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = ready ? "True" : "False" }),
            },
        };
    }

    public static JsonObject RunningStatus() => new()
    {
        ["phase"] = "Running",
        ["podIP"] = "10.244.1.7",
        ["conditions"] = new JsonArray(new JsonObject { ["type"] = "PodScheduled", ["status"] = "True" }),
        ["containerStatuses"] = new JsonArray(new JsonObject
        {
            ["name"] = "jupyter", ["ready"] = false, ["restartCount"] = 0, ["image"] = "x", ["imageID"] = "",
            ["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = "2026-01-01T00:00:00Z" } },
        }),
    };

    public static JsonObject PendingStatus(string reason = "ContainerCreating") => new()
    {
        ["phase"] = "Pending",
        ["conditions"] = new JsonArray(new JsonObject { ["type"] = "PodScheduled", ["status"] = "True" }),
        ["containerStatuses"] = new JsonArray(new JsonObject
        {
            ["name"] = "jupyter", ["ready"] = false, ["restartCount"] = 0, ["image"] = "x", ["imageID"] = "",
            ["state"] = new JsonObject { ["waiting"] = new JsonObject { ["reason"] = reason } },
        }),
    };

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        var method = ctx.Request.Method;
        var body = await new StreamReader(ctx.Request.Body, Encoding.UTF8).ReadToEndAsync();
        _requests.Enqueue(new RecordedRequest(method, path, ctx.Request.QueryString.Value ?? "", body));
        if (Forbidden.Any(f => $"{method} {path}".StartsWith(f, StringComparison.Ordinal)))
        {
            await StatusAsync(ctx, 403, "Forbidden", $"forbidden: User \"system:serviceaccount:{Namespace}:dsvm-hub\" cannot do this");
            return;
        }

        var seg = path.Trim('/').Split('/');
        if (seg is ["apis", "networking.k8s.io", "v1", ..])
        {
            // networking.k8s.io/v1 objects (NetworkPolicy) are stored like the core ones.
            seg = ["api", "v1", .. seg[3..]];
        }
        if (path.TrimEnd('/') == "/version")
        {
            await JsonAsync(ctx, 200, new JsonObject { ["major"] = "1", ["minor"] = "31", ["gitVersion"] = "v1.31.0-fake", ["platform"] = "linux/amd64" });
            return;
        }

        if (seg is ["api", "v1", "nodes"])
        {
            await JsonAsync(ctx, 200, List("NodeList", Nodes.Select(n => (JsonObject)n.DeepClone())));
            return;
        }

        if (seg is ["api", "v1", "namespaces", var nsOnly] && method == "GET")
        {
            if (nsOnly != Namespace)
            {
                await StatusAsync(ctx, 404, "NotFound", $"namespaces \"{nsOnly}\" not found");
                return;
            }

            await JsonAsync(ctx, 200, new JsonObject { ["kind"] = "Namespace", ["apiVersion"] = "v1", ["metadata"] = new JsonObject { ["name"] = nsOnly } });
            return;
        }

        if (seg.Length < 5 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "namespaces" || seg[3] != Namespace)
        {
            await StatusAsync(ctx, 404, "NotFound", $"the server could not find the requested resource ({path})");
            return;
        }

        var kind = seg[4];
        var name = seg.Length > 5 ? seg[5] : null;
        var key = $"{kind}/{name}";
        switch (method, seg.Length)
        {
            case ("POST", 5):
            {
                var obj = JsonNode.Parse(body)!.AsObject();
                var n = obj["metadata"]!["name"]!.GetValue<string>();
                obj["metadata"]!["uid"] = $"uid-{Interlocked.Increment(ref _uid)}";
                obj["metadata"]!["creationTimestamp"] = "2026-01-01T00:00:00Z";
                if (kind == "pods")
                {
                    obj["status"] = PendingReads > 0 ? PendingStatus() : PodStatusOnCreate?.Invoke(obj) ?? RunningStatus();
                    obj["metadata"]!["annotations"]!.AsObject()["fake/pending-reads"] = PendingReads.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                if (!_objects.TryAdd($"{kind}/{n}", obj))
                {
                    await StatusAsync(ctx, 409, "AlreadyExists", $"{kind} \"{n}\" already exists");
                    return;
                }

                await JsonAsync(ctx, 201, obj);
                return;
            }

            case ("GET", 5):
            {
                var selector = ctx.Request.Query["labelSelector"].ToString();
                var items = _objects.Where(kv => kv.Key.StartsWith(kind + "/", StringComparison.Ordinal))
                    .Select(kv => kv.Value).Where(o => Matches(o, selector)).Select(o => (JsonObject)o.DeepClone());
                await JsonAsync(ctx, 200, List(KindOf(kind) + "List", items));
                return;
            }

            case ("GET", 6):
            {
                if (!_objects.TryGetValue(key, out var obj))
                {
                    await StatusAsync(ctx, 404, "NotFound", $"{kind} \"{name}\" not found");
                    return;
                }

                if (kind == "pods")
                {
                    if (_terminating.TryGetValue(key, out var left))
                    {
                        if (left <= 0)
                        {
                            _objects.TryRemove(key, out _);
                            _terminating.TryRemove(key, out _);
                            await StatusAsync(ctx, 404, "NotFound", $"pods \"{name}\" not found");
                            return;
                        }

                        _terminating[key] = left - 1;
                    }
                    else if (obj["metadata"]!["annotations"]?["fake/pending-reads"]?.GetValue<string>() is { } p && int.Parse(p, System.Globalization.CultureInfo.InvariantCulture) is > 0 and var pending)
                    {
                        obj["metadata"]!["annotations"]!["fake/pending-reads"] = (pending - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
                        if (pending - 1 == 0)
                        {
                            obj["status"] = PodStatusOnCreate?.Invoke(obj) ?? RunningStatus();
                        }
                    }
                }

                await JsonAsync(ctx, 200, obj);
                return;
            }

            case ("PUT", 6):
            {
                if (!_objects.ContainsKey(key))
                {
                    await StatusAsync(ctx, 404, "NotFound", $"{kind} \"{name}\" not found");
                    return;
                }

                var obj = JsonNode.Parse(body)!.AsObject();
                _objects[key] = obj;
                await JsonAsync(ctx, 200, obj);
                return;
            }

            case ("DELETE", 6):
            {
                if (!_objects.TryGetValue(key, out var obj))
                {
                    await StatusAsync(ctx, 404, "NotFound", $"{kind} \"{name}\" not found");
                    return;
                }

                if (kind == "pods" && ctx.Request.Query["gracePeriodSeconds"] == "0")
                {
                    // A forced delete: gone at once, as the API server does it.
                    _objects.TryRemove(key, out _);
                    _terminating.TryRemove(key, out _);
                }
                else if (kind == "pods" && TerminatingReads > 0)
                {
                    obj["metadata"]!["deletionTimestamp"] = "2026-01-01T00:01:00Z";
                    _terminating.TryAdd(key, TerminatingReads);
                }
                else
                {
                    _objects.TryRemove(key, out _);
                }

                if (kind == "services")
                {
                    // As Kubernetes before 1.23 (the 1.20 lab) answers a Service delete: a v1 Status, not the Service.
                    await JsonAsync(ctx, 200, new JsonObject
                    {
                        ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Success",
                        ["details"] = new JsonObject { ["name"] = name, ["kind"] = "services", ["uid"] = obj["metadata"]?["uid"]?.GetValue<string>() },
                    });
                    return;
                }

                await JsonAsync(ctx, 200, obj);
                return;
            }

            case ("GET", 7) when kind == "pods" && seg[6] == "log":
            {
                if (!_objects.ContainsKey(key))
                {
                    await StatusAsync(ctx, 404, "NotFound", $"pods \"{name}\" not found");
                    return;
                }

                var text = Logs.TryGetValue(name!, out var t) ? t : "";
                if (int.TryParse(ctx.Request.Query["tailLines"], out var tail))
                {
                    text = string.Join('\n', text.TrimEnd('\n').Split('\n').TakeLast(tail)) + "\n";
                }

                ctx.Response.ContentType = "text/plain";
                await ctx.Response.WriteAsync(text);
                return;
            }

            default:
                await StatusAsync(ctx, 405, "MethodNotAllowed", $"{method} {path} is not served by the fake");
                return;
        }
    }

    private static string KindOf(string plural) => plural switch
    {
        "pods" => "Pod",
        "services" => "Service",
        "secrets" => "Secret",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "networkpolicies" => "NetworkPolicy",
        _ => plural,
    };

    private static bool Matches(JsonObject o, string selector)
    {
        if (selector.Length == 0)
        {
            return true;
        }

        var labels = o["metadata"]?["labels"]?.AsObject();
        return selector.Split(',').All(term =>
        {
            var kv = term.Split('=', 2);
            return labels is not null && labels.TryGetPropertyValue(kv[0], out var v) && v?.GetValue<string>() == kv[1];
        });
    }

    private static JsonObject List(string kind, IEnumerable<JsonObject> items) =>
        new() { ["kind"] = kind, ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["items"] = new JsonArray([.. items]) };

    private static Task StatusAsync(HttpContext ctx, int code, string reason, string message) =>
        JsonAsync(ctx, code, new JsonObject
        {
            ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Failure",
            ["message"] = message, ["reason"] = reason, ["code"] = code,
        });

    private static async Task JsonAsync(HttpContext ctx, int code, JsonNode body)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(body.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
