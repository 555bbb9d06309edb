using Dsvm.Core.Locks;

namespace Dsvm.Core.Tests;

/// <summary>Expected results are what <c>dpkg --compare-versions A lt|eq|gt B</c> answered on Debian trixie.</summary>
public sealed class DebianVersionTests
{
    [Theory]
    [InlineData("1.0", "1.0", 0)]
    [InlineData("1.0", "1.1", -1)]
    [InlineData("1.0", "1.0-0", 0)]
    [InlineData("1.0-0", "1.0", 0)]
    [InlineData("1.0-1", "1.0-2", -1)]
    [InlineData("1.0~rc1", "1.0", -1)]
    [InlineData("1.0~rc1", "1.0~rc2", -1)]
    [InlineData("1.0~~", "1.0~", -1)]
    [InlineData("1.0~", "1.0", -1)]
    [InlineData("1.0", "1.0a", -1)]
    [InlineData("1.0a", "1.0+", -1)]
    [InlineData("1.0+", "1.0.", -1)]
    [InlineData("1.0.1", "1.0a", 1)]
    [InlineData("1:0.9", "2.0", 1)]
    [InlineData("0:1.0", "1.0", 0)]
    [InlineData("2:1.0", "1:9.9", 1)]
    [InlineData("1.10", "1.9", 1)]
    [InlineData("1.010", "1.10", 0)]
    [InlineData("0", "00", 0)]
    [InlineData("1.0-1+b1", "1.0-1", 1)]
    [InlineData("1.0-1", "1.0-1.1", -1)]
    [InlineData("1.0-1~bpo12+1", "1.0-1", -1)]
    [InlineData("2.41.5-0+deb13u1", "2.41-2", 1)]
    [InlineData("3.13.5-1", "3.13.5-1+b1", -1)]
    [InlineData("1:2.47.3-0+deb13u1", "1:2.47.3-0+deb13u2", -1)]
    [InlineData("5.2.37-2+b10", "5.2.37-2+b9", 1)]
    [InlineData("1.0-a", "1.0-b", -1)]
    [InlineData("1.2.3-1-2", "1.2.3-1-10", -1)]
    public void Compare_orders_as_dpkg_does(string a, string b, int expected)
    {
        Assert.Equal(expected, DebianVersion.Compare(a, b));
        Assert.Equal(-expected, DebianVersion.Compare(b, a));
    }
}
