namespace Dsvm.Core.Locks;

/// <summary>
/// Debian version ordering exactly as <c>dpkg --compare-versions</c> orders them: <c>[epoch:]upstream[-revision]</c>,
/// the epoch compared as a number, then upstream and revision with dpkg's <c>verrevcmp</c> (runs of non-digits
/// compared character by character, letters before other characters, '~' before everything, even the end; runs of
/// digits compared as numbers). A missing epoch is 0 and a missing revision is empty (which equals "0").
/// </summary>
public static class DebianVersion
{
    /// <summary>Negative when <paramref name="a"/> is older, 0 when equal (as dpkg sees it), positive when newer.</summary>
    public static int Compare(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var (ea, ua, ra) = Split(a);
        var (eb, ub, rb) = Split(b);
        if (ea != eb)
        {
            return ea < eb ? -1 : 1;
        }

        var c = VerRevCmp(ua, ub);
        return c != 0 ? Math.Sign(c) : Math.Sign(VerRevCmp(ra, rb));
    }

    private static (long Epoch, string Upstream, string Revision) Split(string version)
    {
        var v = version.Trim();
        long epoch = 0;
        var colon = v.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            // dpkg rejects a non-numeric epoch; a lock never carries one, so treat it as 0 rather than throw.
            _ = long.TryParse(v.AsSpan(0, colon), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out epoch);
            v = v[(colon + 1)..];
        }

        var dash = v.LastIndexOf('-');
        return dash >= 0 ? (epoch, v[..dash], v[(dash + 1)..]) : (epoch, v, "");
    }

    private static int Order(string s, int i)
    {
        if (i >= s.Length)
        {
            return 0;
        }

        var c = s[i];
        return c switch
        {
            >= '0' and <= '9' => 0,
            (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') => c,
            '~' => -1,
            _ => c + 256,
        };
    }

    private static bool Digit(string s, int i) => i < s.Length && char.IsAsciiDigit(s[i]);

    /// <summary>dpkg's <c>verrevcmp</c> (lib/dpkg/version.c), index for pointer.</summary>
    private static int VerRevCmp(string a, string b)
    {
        int i = 0, j = 0;
        while (i < a.Length || j < b.Length)
        {
            var firstDiff = 0;
            while ((i < a.Length && !Digit(a, i)) || (j < b.Length && !Digit(b, j)))
            {
                var ac = Order(a, i);
                var bc = Order(b, j);
                if (ac != bc)
                {
                    return ac - bc;
                }

                i++;
                j++;
            }

            while (i < a.Length && a[i] == '0')
            {
                i++;
            }

            while (j < b.Length && b[j] == '0')
            {
                j++;
            }

            while (Digit(a, i) && Digit(b, j))
            {
                if (firstDiff == 0)
                {
                    firstDiff = a[i] - b[j];
                }

                i++;
                j++;
            }

            if (Digit(a, i))
            {
                return 1;
            }

            if (Digit(b, j))
            {
                return -1;
            }

            if (firstDiff != 0)
            {
                return firstDiff;
            }
        }

        return 0;
    }
}
