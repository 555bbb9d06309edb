using System.Globalization;
using System.Reflection;
using Dsvm.Core.Specs;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Hub;

/// <summary>
/// Keys in a configuration source that no setting reads (a typo such as <c>Hub:IdelTimeout</c> would otherwise do
/// nothing): walks one provider's keys against the settable properties of an options type, recursively (lists take
/// indices, dictionaries any key), case-insensitively as the binder does.
/// </summary>
public static class ConfigurationKeys
{
    /// <summary>An unknown key (its full path) and " (did you mean 'Hub:IdleTimeout'?)" or "".</summary>
    public sealed record Unknown(string Key, string Suggestion);

    /// <summary>The keys of <paramref name="provider"/> under the sections of <paramref name="sections"/> that bind to nothing.</summary>
    public static IReadOnlyList<Unknown> Find(IConfigurationProvider provider, IReadOnlyDictionary<string, Type> sections, IReadOnlyCollection<string>? extraKeys = null)
    {
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(sections);
        var found = new List<Unknown>();
        var extra = new HashSet<string>(extraKeys ?? [], StringComparer.OrdinalIgnoreCase);
        foreach (var key in ChildKeys(provider, null))
        {
            var section = sections.FirstOrDefault(s => string.Equals(s.Key, key, StringComparison.OrdinalIgnoreCase));
            if (section.Value is null)
            {
                found.Add(new Unknown(key, SpecLoader.Suggest(key, sections.Keys)));
                continue;
            }

            Walk(provider, key, section.Value, extra, found);
        }

        return found;
    }

    private static IEnumerable<string> ChildKeys(IConfigurationProvider provider, string? path) =>
        provider.GetChildKeys([], path).Distinct(StringComparer.OrdinalIgnoreCase);

    private static void Walk(IConfigurationProvider provider, string path, Type type, HashSet<string> extra, List<Unknown> found)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        foreach (var key in ChildKeys(provider, path))
        {
            var full = path + ConfigurationPath.KeyDelimiter + key;
            if (extra.Contains(full))
            {
                continue;
            }

            if (IsLeaf(type))
            {
                found.Add(new Unknown(full, ""));
            }
            else if (DictionaryValue(type) is { } value)
            {
                Walk(provider, full, value, extra, found);
            }
            else if (ElementType(type) is { } element)
            {
                if (int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    Walk(provider, full, element, extra, found);
                }
                else
                {
                    found.Add(new Unknown(full, ""));
                }
            }
            else
            {
                var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.GetIndexParameters().Length == 0).ToList();
                var property = properties.FirstOrDefault(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase));
                if (property is null)
                {
                    found.Add(new Unknown(full, SpecLoader.Suggest(full, properties.Select(p => path + ConfigurationPath.KeyDelimiter + p.Name))));
                }
                else
                {
                    Walk(provider, full, property.PropertyType, extra, found);
                }
            }
        }
    }

    private static bool IsLeaf(Type t) =>
        t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan) || t == typeof(DateTime)
        || t == typeof(DateTimeOffset) || t == typeof(Guid) || t == typeof(Uri);

    private static Type? DictionaryValue(Type t) =>
        new[] { t }.Concat(t.GetInterfaces()).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() is var d
            && (d == typeof(IDictionary<,>) || d == typeof(IReadOnlyDictionary<,>)))?.GetGenericArguments()[1];

    private static Type? ElementType(Type t) =>
        t.IsArray ? t.GetElementType()
        : new[] { t }.Concat(t.GetInterfaces()).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>))?.GetGenericArguments()[0];
}
