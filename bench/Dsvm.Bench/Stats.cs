namespace Dsvm.Bench;

/// <summary>Summary of a set of timings (seconds) or sizes.</summary>
internal sealed record Summary(int Count, double Min, double P50, double P95, double Max, double Mean)
{
    public static Summary? Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0
            ? null
            : new Summary(sorted.Length, sorted[0], Stats.Percentile(sorted, 50), Stats.Percentile(sorted, 95), sorted[^1], sorted.Average());
    }
}

internal static class Stats
{
    /// <summary>
    /// The p-th percentile of sorted values, interpolating linearly between the two nearest ranks (the usual
    /// "type 7" definition: p50 of an even count is the mean of the middle two; p95 of 3 values lies near the top).
    /// </summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            throw new ArgumentException("no values", nameof(sorted));
        }

        if (sorted.Count == 1)
        {
            return sorted[0];
        }

        var rank = Math.Clamp(p, 0, 100) / 100 * (sorted.Count - 1);
        var lower = (int)Math.Floor(rank);
        var upper = Math.Min(lower + 1, sorted.Count - 1);
        return sorted[lower] + ((rank - lower) * (sorted[upper] - sorted[lower]));
    }
}
