using System.Globalization;
using System.Text.RegularExpressions;

namespace Dsvm.Docker;

/// <summary>The engine's times (RFC 3339 with up to nine fractional digits; the zero time for "never").</summary>
public static partial class EngineTime
{
    /// <summary>The time, or null for an empty, zero or unreadable one. .NET reads at most seven fractional digits: the rest are dropped.</summary>
    public static DateTimeOffset? Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var trimmed = ExtraDigits().Replace(text, "$1");
        return DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) && t.Year > 1 ? t : null;
    }

    [GeneratedRegex(@"(\.\d{7})\d+")]
    private static partial Regex ExtraDigits();
}
