using System.Globalization;
using System.Text.RegularExpressions;

namespace Dsvm.Core;

/// <summary>
/// ISO 8601 / RFC 3339 times as servers write them: jupyter_server (<c>2025-01-31T09:15:02.123456Z</c>; no fraction
/// when it is zero) and the Docker engine (nine fractional digits). An offset instead of Z, a missing zone (taken as
/// UTC) and fractions finer than 100 ns (dropped) are accepted; the result is in UTC.
/// </summary>
public static partial class IsoTime
{
    /// <summary>The time; an <see cref="InvalidDataException"/> naming <paramref name="what"/> when it is not one.</summary>
    public static DateTimeOffset Parse(string value, string what) =>
        TryParse(value) ?? throw new InvalidDataException($"{what} is not an ISO 8601 time: '{value}'");

    /// <summary>The time, or null for a missing or unreadable one.</summary>
    public static DateTimeOffset? TryParse(string? value)
    {
        var m = Pattern().Match(value?.Trim() ?? "");
        if (!m.Success)
        {
            return null;
        }

        var fraction = m.Groups["fraction"].Value;
        var zone = m.Groups["zone"].Value;
        var text = m.Groups["main"].Value
            + (fraction.Length > 0 ? "." + fraction[..Math.Min(fraction.Length, 7)] : "")
            + (zone.Length == 0 || zone is "Z" or "z" ? "Z" : zone);
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : null;
    }

    /// <summary>A <see cref="DateTime"/> from a client library as UTC: a local one converted, an unspecified one taken as UTC.</summary>
    public static DateTimeOffset Utc(DateTime t) =>
        new(t.Kind == DateTimeKind.Local ? t.ToUniversalTime() : DateTime.SpecifyKind(t, DateTimeKind.Utc));

    [GeneratedRegex(@"^(?<main>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?)(\.(?<fraction>\d+))?(?<zone>[Zz]|[+-]\d{2}:?\d{2})?\z")]
    private static partial Regex Pattern();
}
