using Dsvm.Core;

namespace Dsvm.Hub.Api;

/// <summary>
/// Checks of request fields: a null, missing or out-of-range value is a 400 whose detail starts with the field's
/// name (as the JSON spells it), never a 500 further in.
/// </summary>
public static class Fields
{
    /// <summary>The value of a required field.</summary>
    public static T Required<T>(T? value, string field)
        where T : class =>
        value ?? throw new UsageException($"{field}: is required");

    /// <summary>A required text field: not null, not empty, at most <paramref name="maxLength"/> characters.</summary>
    public static string Text(string? value, string field, int maxLength = 1000)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new UsageException($"{field}: is required");
        }

        return value.Length <= maxLength ? value : throw new UsageException($"{field}: at most {maxLength} characters");
    }

    /// <summary>An optional text field: null stays null; otherwise at most <paramref name="maxLength"/> characters.</summary>
    public static string? OptionalText(string? value, string field, int maxLength = 1000) =>
        value is null ? null : Text(value, field, maxLength);

    /// <summary>A list without null items (null itself stays null).</summary>
    public static IReadOnlyList<string>? NoNulls(IReadOnlyList<string?>? values, string field, int maxItems = 1000)
    {
        if (values is null)
        {
            return null;
        }

        if (values.Count > maxItems)
        {
            throw new UsageException($"{field}: at most {maxItems} items");
        }

        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] is null)
            {
                throw new UsageException($"{field}[{i}]: must not be null");
            }
        }

        return values!;
    }

    /// <summary>An optional whole number within [min, max].</summary>
    public static int? Range(long? value, string field, int min, int max) =>
        value is null ? null
        : value < min || value > max ? throw new UsageException($"{field}: must be between {min} and {max} (got {value})")
        : (int)value;
}
