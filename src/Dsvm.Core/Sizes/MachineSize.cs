using System.Globalization;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Dsvm.Core.Specs;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Sizes;

[JsonConverter(typeof(JsonStringEnumConverter<SizeClass>))]
public enum SizeClass
{
    General,
    Memory,
    Gpu,
}

/// <summary>
/// What a workspace's network reaches. Both never reach another workspace nor the host (hub included);
/// <see cref="Internet"/> (the default) reaches the outside, <see cref="Isolated"/> has no route out at all.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<WorkspaceNetwork>))]
public enum WorkspaceNetwork
{
    Internet,
    Isolated,
}

/// <summary>A machine size: data, mapped by each backend to its own limits.</summary>
public sealed record MachineSize(string Name, double Vcpus, double MemoryGiB, int Gpus, SizeClass Class, string Description = "",
    WorkspaceNetwork Network = WorkspaceNetwork.Internet)
{
    public long MemoryBytes => (long)(MemoryGiB * 1024 * 1024 * 1024);
    public long NanoCpus => (long)(Vcpus * 1_000_000_000);
}

/// <summary>What this host offers, to tell which sizes it can run.</summary>
public sealed record HostCapacity(int Cpus, long MemoryBytes, int Gpus);

/// <summary>The default sizes plus a user's <c>sizes.yaml</c> (same names replace defaults).</summary>
public sealed partial class SizeCatalog
{
    public const string DefaultSize = "medium";
    public const string FileName = "sizes.yaml";

    private readonly Dictionary<string, MachineSize> _sizes;

    public SizeCatalog(IEnumerable<MachineSize> sizes) => _sizes = sizes.ToDictionary(s => s.Name, StringComparer.Ordinal);

    public IEnumerable<MachineSize> All => _sizes.Values.OrderBy(s => s.Class).ThenBy(s => s.Gpus).ThenBy(s => s.Vcpus).ThenBy(s => s.MemoryGiB);

    public static IReadOnlyList<MachineSize> Defaults { get; } =
    [
        new("small", 1, 2, 0, SizeClass.General, "1 vCPU, 2 GiB: notebooks and teaching"),
        new("medium", 2, 4, 0, SizeClass.General, "2 vCPUs, 4 GiB: the default"),
        new("large", 4, 16, 0, SizeClass.General, "4 vCPUs, 16 GiB"),
        new("xlarge", 8, 32, 0, SizeClass.General, "8 vCPUs, 32 GiB"),
        new("memory-medium", 2, 16, 0, SizeClass.Memory, "2 vCPUs, 16 GiB: memory-optimised"),
        new("memory-large", 4, 64, 0, SizeClass.Memory, "4 vCPUs, 64 GiB: memory-optimised"),
        new("gpu-small", 2, 8, 1, SizeClass.Gpu, "2 vCPUs, 8 GiB, 1 GPU"),
        new("gpu-medium", 4, 16, 1, SizeClass.Gpu, "4 vCPUs, 16 GiB, 1 GPU"),
        new("gpu-large", 8, 64, 2, SizeClass.Gpu, "8 vCPUs, 64 GiB, 2 GPUs"),
    ];

    public MachineSize Get(string name) =>
        _sizes.TryGetValue(name, out var s)
            ? s
            : throw new NotFoundException($"unknown size '{name}'{SpecLoader.Suggest(name, _sizes.Keys)} (sizes: {string.Join(", ", All.Select(x => x.Name))})");

    public bool Contains(string name) => _sizes.ContainsKey(name);

    /// <summary>Null when the host can run the size, else why not.</summary>
    public static string? WhyNot(MachineSize size, HostCapacity host)
    {
        if (size.Vcpus > host.Cpus)
        {
            return $"needs {size.Vcpus:0.##} vCPUs; this host has {host.Cpus}";
        }

        if (size.MemoryBytes > host.MemoryBytes)
        {
            return $"needs {size.MemoryGiB:0.##} GiB of memory; this host has {host.MemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB";
        }

        if (size.Gpus > host.Gpus)
        {
            return host.Gpus == 0 ? $"needs {size.Gpus} GPU(s); this host has none" : $"needs {size.Gpus} GPUs; this host has {host.Gpus}";
        }

        return null;
    }

    /// <summary>The defaults, with the user's file (if any) merged over them.</summary>
    public static SizeCatalog Load(string? userFile)
    {
        var sizes = Defaults.ToDictionary(s => s.Name, StringComparer.Ordinal);
        if (userFile is not null && File.Exists(userFile))
        {
            foreach (var s in Parse(SpecYaml.ReadFile(userFile), userFile))
            {
                sizes[s.Name] = s;
            }
        }

        return new SizeCatalog(sizes.Values);
    }

    private static readonly string[] Keys = ["vcpus", "memory", "gpus", "class", "description", "network"];

    /// <summary>
    /// Parses <c>sizes.yaml</c>: a mapping of name to {vcpus, memory (GiB, or "16Gi"/"512Mi"), gpus, class, description,
    /// network (internet | isolated)}.
    /// Every problem is reported with its line and key.
    /// </summary>
    public static IReadOnlyList<MachineSize> Parse(string text, string file)
    {
        var errors = new List<SpecError>();
        void Err(YamlNode n, string path, string msg) => errors.Add(new SpecError(file, (int)n.Start.Line, (int)n.Start.Column, path, msg));

        var root = SpecYaml.LoadMappingOrEmpty(text, file, "expected a mapping of size names to {vcpus, memory, gpus, class}");

        var result = new List<MachineSize>();
        foreach (var (keyNode, valueNode) in root.Children)
        {
            var name = (keyNode as YamlScalarNode)?.Value ?? "";
            if (!SpecLoader.NamePattern().IsMatch(name))
            {
                Err(keyNode, name, $"'{name}' is not a valid size name (lowercase letters, digits and '-')");
                continue;
            }

            if (valueNode is not YamlMappingNode map)
            {
                Err(valueNode, name, "expected a mapping with vcpus, memory, gpus, class");
                continue;
            }

            string? Get(string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? (n as YamlScalarNode)?.Value : null;
            YamlNode NodeOf(string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : map;
            foreach (var k in map.Children.Keys.OfType<YamlScalarNode>().Where(k => !Keys.Contains(k.Value)))
            {
                Err(k, $"{name}.{k.Value}", $"unknown key '{k.Value}'{SpecLoader.Suggest(k.Value ?? "", Keys)} (allowed: {string.Join(", ", Keys)})");
            }

            var ok = true;
            double vcpus = 0, memory = 0;
            var gpus = 0;
            if (ParseDecimal(Get("vcpus")) is not { } v || v < MinVcpus || v > MaxVcpus)
            {
                Err(NodeOf("vcpus"), $"{name}.vcpus", $"required: a number of vCPUs from {MinVcpus} to {MaxVcpus} (e.g. 2 or 0.5)");
                ok = false;
            }
            else
            {
                vcpus = v;
            }

            if (ParseMemory(Get("memory")) is not { } mem)
            {
                Err(NodeOf("memory"), $"{name}.memory", $"required: memory in GiB (e.g. 16, \"16Gi\" or \"512Mi\"), from 64Mi to {MaxMemoryGiB}Gi");
                ok = false;
            }
            else
            {
                memory = mem;
            }

            if (Get("gpus") is { } g && (!int.TryParse(g, NumberStyles.None, CultureInfo.InvariantCulture, out gpus) || gpus > 16))
            {
                Err(NodeOf("gpus"), $"{name}.gpus", "must be a whole number of GPUs (0-16)");
                ok = false;
            }

            var cls = gpus > 0 ? SizeClass.Gpu : SizeClass.General;
            if (Get("class") is { } c)
            {
                if (!Enum.TryParse(c, ignoreCase: true, out cls) || int.TryParse(c, out _))
                {
                    Err(NodeOf("class"), $"{name}.class", $"'{c}' is not a size class (general, memory, gpu)");
                    ok = false;
                }
                else if (cls == SizeClass.Gpu && gpus == 0)
                {
                    Err(NodeOf("class"), $"{name}.class", "a gpu-class size needs gpus: 1 or more");
                    ok = false;
                }
            }

            var network = WorkspaceNetwork.Internet;
            if (Get("network") is { } net && !(Enum.TryParse(net, ignoreCase: true, out network) && Enum.IsDefined(network) && !int.TryParse(net, out _)))
            {
                Err(NodeOf("network"), $"{name}.network", $"'{net}' is not a network mode (internet, isolated)");
                ok = false;
            }

            if (ok)
            {
                result.Add(new MachineSize(name, vcpus, memory, gpus, cls, Get("description") ?? "", network));
            }
        }

        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }

        return result;
    }

    public const double MinVcpus = 0.01;
    public const double MaxVcpus = 1024;
    public const double MinMemoryGiB = 1.0 / 16;
    public const double MaxMemoryGiB = 16 * 1024;

    /// <summary>
    /// GiB from "16", "16Gi", "16G", "512Mi", "512M", "1Ti", "1T", from 64 MiB to 16 TiB; null for anything else
    /// (exponents, NaN, Infinity, signs and repeated units included).
    /// </summary>
    internal static double? ParseMemory(string? text)
    {
        if (text is null || MemoryPattern().Match(text.Trim()) is not { Success: true } m || ParseDecimal(m.Groups[1].Value) is not { } v)
        {
            return null;
        }

        var gib = m.Groups[2].Value switch
        {
            "Mi" or "M" => v / 1024,
            "Ti" or "T" => v * 1024,
            _ => v,
        };
        return gib is >= MinMemoryGiB and <= MaxMemoryGiB ? gib : null;
    }

    /// <summary>A plain decimal ("2", "0.5"): no exponent, sign, NaN or Infinity, so the value is always finite.</summary>
    internal static double? ParseDecimal(string? text) =>
        text is not null && DecimalPattern().IsMatch(text.Trim())
            ? double.Parse(text.Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture)
            : null;

    [GeneratedRegex(@"^([0-9]{1,9}(?:\.[0-9]{1,9})?)\s*(Gi|G|Mi|M|Ti|T)?\z")]
    private static partial Regex MemoryPattern();

    [GeneratedRegex(@"^[0-9]{1,9}(?:\.[0-9]{1,9})?\z")]
    private static partial Regex DecimalPattern();
}
