using System.Text;
using Xunit;

namespace Dsvm.Testing;

/// <summary>
/// Generated bad input for parser tests: mutations of a valid document (fixed seed, so a failure repeats) and a
/// guard that runs one case at a time and fails when a case does not finish within its bound. The bound is a guard
/// against quadratic or endless work, not a benchmark.
/// </summary>
public static class Fuzz
{
    /// <summary>Values that have broken number and unit parsers.</summary>
    public static readonly IReadOnlyList<string> NastyValues =
    [
        "NaN", "Infinity", "-Infinity", "1e400", "1e-300", "-1", "0", "5GGGG", "0x10", "1_000", "\"\"", "''", "~", "null",
        "9999999999999999999999", "1.5Gi", "64Mi", "1e3", ".5", "+2", "2..5", "true", "[]", "{}", "\"\\u0000\"", "\t", "-", "?",
    ];

    private const string Specials = "{}[]:,-#&*!|>'\"%@`\n\t ?\\\r\u00e9\u0000\ufeff";

    /// <summary><paramref name="count"/> mutations of <paramref name="seed"/>, the same ones for the same <paramref name="randomSeed"/>.</summary>
    public static IEnumerable<string> Cases(string seed, int count, int randomSeed, IReadOnlyList<string>? values = null)
    {
        values ??= NastyValues;
        var random = new Random(randomSeed);
        for (var i = 0; i < count; i++)
        {
            var text = new StringBuilder(seed);
            var mutations = 1 + random.Next(3);
            for (var m = 0; m < mutations; m++)
            {
                Mutate(text, random, values);
            }

            yield return text.ToString();
        }
    }

    private static void Mutate(StringBuilder text, Random random, IReadOnlyList<string> values)
    {
        var at = random.Next(text.Length + 1);
        switch (random.Next(10))
        {
            case 0:
                text.Insert(at, Specials[random.Next(Specials.Length)]);
                break;
            case 1:
                text.Remove(at, Math.Min(random.Next(1, 20), text.Length - at));
                break;
            case 2:
                text.Length = at;
                break;
            case 3:
                // A nasty value in place of the word at this point (a number, a size, a name).
                var end = at;
                while (end < text.Length && !char.IsWhiteSpace(text[end]) && text[end] is not (',' or ']' or '}'))
                {
                    end++;
                }

                text.Remove(at, end - at).Insert(at, values[random.Next(values.Count)]);
                break;
            case 4:
                // Deep nesting: flow or block.
                var depth = random.Next(1, 20000);
                text.Insert(at, random.Next(2) == 0 ? Repeat("{a: ", depth) : Repeat("[", depth));
                break;
            case 5:
                text.Insert(at, new string('x', random.Next(1, 200_000)));
                break;
            case 6:
                var start = random.Next(text.Length + 1);
                var length = Math.Min(random.Next(1, 200), text.Length - start);
                var span = text.ToString(start, length);
                text.Insert(at, Repeat(span, random.Next(1, 50)));
                break;
            case 7:
                text.Insert(at, "\n" + Repeat("  ", random.Next(0, 40)) + "- " + values[random.Next(values.Count)] + "\n");
                break;
            case 8:
                text.Insert(at, random.Next(3) switch { 0 => "&a ", 1 => "*a", _ => "<<: *a\n" });
                break;
            default:
                text.Insert(at, values[random.Next(values.Count)]);
                break;
        }
    }

    private static string Repeat(string s, int n) => new StringBuilder(s.Length * n).Insert(0, s, n).ToString();

    /// <summary>Runs <paramref name="action"/> and fails (naming the case) when it has not returned within <paramref name="limit"/>.</summary>
    public static void Bounded(string what, Action action, TimeSpan? limit = null)
    {
        var bound = limit ?? TimeSpan.FromSeconds(2);
        // Its own thread: a case that never ends fails the test instead of hanging it.
        var task = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(task.Wait(bound), $"{what}: not finished after {bound.TotalSeconds} s");
    }
}
