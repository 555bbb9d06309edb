using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core.Locks;

namespace Dsvm.Images.Tests;

/// <summary>The version order against the real <c>dpkg --compare-versions</c> of this (Debian) host, on generated versions.</summary>
public sealed class DebianVersionDpkgTests
{
    private static string RandomVersion(Random r)
    {
        const string chars = "0123456789.+~a-";
        var upstream = r.Next(10).ToString(System.Globalization.CultureInfo.InvariantCulture)
            + new string(Enumerable.Range(0, r.Next(0, 6)).Select(_ => chars[r.Next(chars.Length - 1)]).ToArray());
        var epoch = r.Next(4) == 0 ? $"{r.Next(3)}:" : "";
        var revision = r.Next(2) == 0 ? "-" + r.Next(3) + (r.Next(2) == 0 ? "+b" + r.Next(12) : r.Next(2) == 0 ? "~bpo1" : "") : "";
        return epoch + upstream + revision;
    }

    [Fact]
    public async Task Compare_agrees_with_dpkg_on_generated_versions()
    {
        Assert.True(File.Exists("/usr/bin/dpkg"), "this test compares with dpkg, which every Debian host has");
        var r = new Random(20261206);
        for (var i = 0; i < 150; i++)
        {
            var a = RandomVersion(r);
            var b = r.Next(5) == 0 ? a : RandomVersion(r);
            var lt = await Cli.Wrap("/usr/bin/dpkg").WithArguments(["--compare-versions", a, "lt", b]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
            var eq = await Cli.Wrap("/usr/bin/dpkg").WithArguments(["--compare-versions", a, "eq", b]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
            var expected = lt.ExitCode == 0 ? -1 : eq.ExitCode == 0 ? 0 : 1;
            Assert.True(expected == DebianVersion.Compare(a, b), $"dpkg says compare({a}, {b}) = {expected}, DebianVersion says {DebianVersion.Compare(a, b)}");
        }
    }
}
