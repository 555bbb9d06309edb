using System.Text.Json.Serialization;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Checks;

/// <summary>Kinds of in-image checks.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CheckKind>))]
public enum CheckKind
{
    PythonImport,
    RLibrary,
    Kernel,
    Notebook,
    Command,
}

/// <summary>One check to run inside an image, offline, as the unprivileged user.</summary>
public sealed record CheckDefinition(string Id, CheckKind Kind, string Target);

/// <summary>The outcome of one check; <see cref="Detail"/> carries a version on success, the reason on failure.</summary>
public sealed record CheckResult(string Id, CheckKind Kind, string Target, bool Passed, string Detail, double Seconds);

/// <summary>Derives the checks of an environment from its toolsets and its own <c>checks:</c> section.</summary>
public static class CheckPlan
{
    /// <summary>Folder of the image where the spec's samples are shipped.</summary>
    public const string SamplesPath = "/opt/dsvm/samples";

    public static IReadOnlyList<CheckDefinition> For(EnvironmentSpec spec, ToolsetCatalog catalog)
    {
        var toolsets = catalog.Resolve(spec);
        var checks = new List<CheckDefinition>();

        void Add(CheckKind kind, IEnumerable<string> targets)
        {
            foreach (var t in targets)
            {
                if (!checks.Any(c => c.Kind == kind && c.Target == t))
                {
                    var id = $"{KindPrefix(kind)}:{t}";
                    checks.Add(new CheckDefinition(id, kind, t));
                }
            }
        }

        Add(CheckKind.Command, toolsets.SelectMany(t => t.Commands));
        Add(CheckKind.PythonImport, toolsets.SelectMany(t => t.PythonImports).Concat(spec.Checks.Python));
        Add(CheckKind.RLibrary, toolsets.SelectMany(t => t.RLibraries).Concat(spec.Checks.R));
        Add(CheckKind.Kernel, spec.Kernels);
        Add(CheckKind.Command, spec.Checks.Commands);
        Add(CheckKind.Notebook, spec.Checks.Notebooks.Select(n => SamplesPath + "/" + RelativeToSamples(spec, n)));
        return checks;
    }

    private static string RelativeToSamples(EnvironmentSpec spec, string notebook)
    {
        var n = SpecLoader.NormalizeRelative(notebook);
        var s = SpecLoader.NormalizeRelative(spec.Samples ?? "");
        return s.Length > 0 && n.StartsWith(s + "/", StringComparison.Ordinal) ? n[(s.Length + 1)..] : n;
    }

    private static string KindPrefix(CheckKind kind) => kind switch
    {
        CheckKind.PythonImport => "python",
        CheckKind.RLibrary => "r",
        CheckKind.Kernel => "kernel",
        CheckKind.Notebook => "notebook",
        _ => "command",
    };
}
