using System.Text.Json;
using Dsvm.Core;
using Dsvm.Hub.Data;

namespace Dsvm.Hub.Api;

/// <summary>
/// Reads a quota body: <c>{"maxWorkspaces": 5, "maxVcpus": null, "maxGpus": "default"}</c>. A number is a limit,
/// <c>null</c> or <c>"unlimited"</c> is no limit, <c>"default"</c> the hub's default. A field left out is the hub's
/// default for PUT and unchanged for PATCH.
/// </summary>
public static class QuotaJson
{
    private static readonly string[] Fields = ["maxWorkspaces", "maxVcpus", "maxGpus"];

    public static QuotaChange Parse(JsonElement body, bool patch)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw new UsageException("a quota is a JSON object: {\"maxWorkspaces\": N, \"maxVcpus\": N, \"maxGpus\": N} (null or \"unlimited\": no limit)");
        }

        foreach (var p in body.EnumerateObject())
        {
            if (!Fields.Contains(p.Name, StringComparer.OrdinalIgnoreCase))
            {
                throw new UsageException($"unknown quota field '{p.Name}': use {string.Join(", ", Fields)}");
            }
        }

        return new QuotaChange(Field(body, "maxWorkspaces", integer: true, patch), Field(body, "maxVcpus", integer: false, patch), Field(body, "maxGpus", integer: true, patch));
    }

    private static QuotaSetting? Field(JsonElement body, string name, bool integer, bool patch)
    {
        JsonElement? value = null;
        foreach (var p in body.EnumerateObject())
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                value = p.Value;
            }
        }

        if (value is not { } v)
        {
            return patch ? null : QuotaSetting.Default;
        }

        switch (v.ValueKind)
        {
            case JsonValueKind.Null:
                return QuotaSetting.Unlimited;
            case JsonValueKind.String when string.Equals(v.GetString(), "unlimited", StringComparison.OrdinalIgnoreCase):
                return QuotaSetting.Unlimited;
            case JsonValueKind.String when string.Equals(v.GetString(), "default", StringComparison.OrdinalIgnoreCase):
                return QuotaSetting.Default;
            case JsonValueKind.Number when v.TryGetDouble(out var d) && d >= 0 && d <= 1_000_000 && (!integer || d == Math.Floor(d)):
                return QuotaSetting.Of(d);
            default:
                throw new UsageException($"quota field '{name}' must be {(integer ? "a whole number" : "a number")} from 0 up, null or \"unlimited\" (no limit), or \"default\"; got {v.GetRawText()}");
        }
    }
}
