using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Specs;

/// <summary>Reading the small YAML files (sizes.yaml, backends.yaml): a mapping at the root, or one located error.</summary>
public static class SpecYaml
{
    /// <summary>The root mapping of <paramref name="text"/>; anything else is a <see cref="SpecValidationException"/> at its place.</summary>
    public static YamlMappingNode LoadMapping(string text, string file, string expected)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            return stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode m
                ? m
                : throw new SpecValidationException([new SpecError(file, 1, 1, "", expected)]);
        }
        catch (YamlException ex)
        {
            throw new SpecValidationException([new SpecError(file, (int)ex.Start.Line, (int)ex.Start.Column, "", $"not valid YAML: {ex.InnerException?.Message ?? ex.Message}")]);
        }
    }
}
