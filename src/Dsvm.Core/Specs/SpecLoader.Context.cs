using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Specs;

public static partial class SpecLoader
{
    /// <summary>Collects errors and key locations while walking the YAML tree.</summary>
    private sealed class Context(string file)
    {
        public List<SpecError> Errors { get; } = [];
        public Dictionary<string, (int Line, int Column)> Locations { get; } = new(StringComparer.Ordinal);

        private static string Join(string parent, string key) => parent.Length == 0 ? key : $"{parent}.{key}";

        public void Locate(string path, YamlNode node) => Locations[path] = ((int)node.Start.Line, (int)node.Start.Column);

        public void Add(YamlNode node, string path, string message) =>
            Errors.Add(new SpecError(file, (int)node.Start.Line, (int)node.Start.Column, path, message));

        public void AddPath(string path, string message)
        {
            var (line, column) = Locations.TryGetValue(path, out var l) ? l : (0, 0);
            Errors.Add(new SpecError(file, line, column, path, message));
        }

        public void AddAt(YamlMappingNode map, string key, string path, string message) =>
            Add(map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : map, path, message);

        public static bool TryGet(YamlMappingNode map, string key, out YamlNode node)
        {
            if (map.Children.TryGetValue(new YamlScalarNode(key), out var n) && !IsNull(n))
            {
                node = n;
                return true;
            }

            node = map;
            return false;
        }

        private static bool IsNull(YamlNode node) =>
            node is YamlScalarNode { Value: null or "" or "~" or "null", Style: YamlDotNet.Core.ScalarStyle.Plain };

        public YamlMappingNode? Mapping(YamlNode node, string path)
        {
            Locate(path, node);
            if (node is YamlMappingNode map)
            {
                return map;
            }

            Add(node, path, path.Length == 0 ? "expected a mapping of keys at the top level" : "expected a mapping");
            return null;
        }

        public void CheckKeys(YamlMappingNode map, string parent, string[] allowed)
        {
            foreach (var keyNode in map.Children.Keys)
            {
                if (keyNode is not YamlScalarNode { Value: { } key })
                {
                    Add(keyNode, parent, "keys must be plain strings");
                    continue;
                }

                var path = Join(parent, key);
                Locate(path, map.Children[keyNode]);
                if (!allowed.Contains(key))
                {
                    Add(keyNode, path, $"unknown key '{key}'{Suggest(key, allowed)} (allowed here: {string.Join(", ", allowed)})");
                }
            }
        }

        public string? Scalar(YamlNode node, string path)
        {
            Locate(path, node);
            if (node is YamlScalarNode scalar)
            {
                return scalar.Value ?? "";
            }

            Add(node, path, node is YamlSequenceNode ? "expected a single value, found a list" : "expected a single value, found a mapping");
            return null;
        }

        public string? OptionalScalar(YamlMappingNode map, string key, string parent) =>
            TryGet(map, key, out var node) ? Scalar(node, Join(parent, key)) : null;

        public string? RequiredScalar(YamlMappingNode map, string key, string parent)
        {
            if (TryGet(map, key, out var node))
            {
                var value = Scalar(node, Join(parent, key));
                if (value is not null && value.Trim().Length == 0)
                {
                    Add(node, Join(parent, key), "must not be empty");
                    return null;
                }

                return value;
            }

            Add(map, Join(parent, key), $"required key '{key}' is missing");
            return null;
        }

        /// <summary>A list of strings; each item is checked against <paramref name="pattern"/> when given.</summary>
        public List<string>? StringList(YamlMappingNode map, string key, string parent, Regex? pattern, string? what)
        {
            var path = Join(parent, key);
            if (!TryGet(map, key, out var node))
            {
                return null;
            }

            if (node is not YamlSequenceNode seq)
            {
                Add(node, path, "expected a list");
                return null;
            }

            // Invalid items are reported and still kept, so later errors name the right index.
            var result = new List<string>();
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var itemPath = $"{path}[{i}]";
                var value = Scalar(seq.Children[i], itemPath);
                result.Add(value ?? "");
                if (value is null)
                {
                    continue;
                }

                if (value.Trim().Length == 0)
                {
                    Add(seq.Children[i], itemPath, "must not be empty");
                }
                else if (pattern is not null && !pattern.IsMatch(value))
                {
                    Add(seq.Children[i], itemPath, $"'{value}' is not a valid {what}");
                }
            }

            return result;
        }
    }
}
