using Dsvm.Core.Locks;

namespace Dsvm.Core.Tests;

public sealed class PackageDiffTests
{
    private static LockedPackage P(string name, string version) => new(name, version);

    [Fact]
    public void Compute_sorts_packages_into_added_removed_upgraded_downgraded()
    {
        LockedPackage[] before = [P("bash", "5.2.37-2+b9"), P("git", "1:2.47.3-0+deb13u1"), P("libfoo1", "1.0~rc1-2"), P("old", "1.0"), P("same", "2.0"), P("zlib1g", "1:1.3.dfsg-3")];
        LockedPackage[] after = [P("bash", "5.2.37-2+b10"), P("git", "1:2.47.3-0+deb13u1"), P("libfoo1", "1.0-1"), P("new", "3.1-1"), P("same", "2.0-0"), P("zlib1g", "1:1.2.13.dfsg-1")];

        var d = PackageDiff.Compute(before, after);

        Assert.Equal([P("new", "3.1-1")], d.Added);
        Assert.Equal([P("old", "1.0")], d.Removed);
        // 5.2.37-2+b9 → +b10 is an upgrade although it sorts lower as text; 1.0~rc1 → 1.0 is an upgrade.
        Assert.Equal([new VersionChange("bash", "5.2.37-2+b9", "5.2.37-2+b10"), new VersionChange("libfoo1", "1.0~rc1-2", "1.0-1")], d.Upgraded);
        Assert.Equal([new VersionChange("zlib1g", "1:1.3.dfsg-3", "1:1.2.13.dfsg-1")], d.Downgraded);
        Assert.Equal([new VersionChange("same", "2.0", "2.0-0")], d.Respelled);
        Assert.Equal(1, d.Unchanged);
        Assert.Equal("+1 −1 ~4", d.Counts);
        Assert.False(d.IsEmpty);
    }

    [Fact]
    public void Compute_of_two_equal_sets_is_empty()
    {
        var d = PackageDiff.Compute([P("a", "1")], [P("a", "1")]);

        Assert.True(d.IsEmpty);
        Assert.Equal("+0 −0 ~0", d.Counts);
    }

    [Fact]
    public void Compute_of_locks_compares_what_each_image_holds()
    {
        EnvironmentLock Lock(IReadOnlyList<LockedPackage> toolsets) => new()
        {
            Environment = "demo", SpecDigest = "sha256:" + new string('a', 64),
            Base = new BaseLock { Distribution = "debian", Suite = "trixie", Components = ["main"], Mirror = "http://deb.debian.org/debian", RootfsDigest = "sha256:" + new string('b', 64) },
            BasePackages = [P("apt", "3.0.3")], ToolsetPackages = toolsets, ExtraPackages = [],
        };

        // The toolsets layer's apt wins over the base's in both locks.
        var d = PackageDiff.Compute(Lock([P("apt", "3.0.3")]), Lock([P("apt", "3.0.4"), P("git", "1:2.47.3-0+deb13u1")]));

        Assert.Equal([new VersionChange("apt", "3.0.3", "3.0.4")], d.Upgraded);
        Assert.Equal([P("git", "1:2.47.3-0+deb13u1")], d.Added);
    }

    [Fact]
    public void ChangeLine_says_what_changed_or_nothing_when_the_lock_is_the_same()
    {
        EnvironmentLock Lock(params LockedPackage[] toolsets) => new()
        {
            Environment = "demo", SpecDigest = "sha256:" + new string('a', 64),
            Base = new BaseLock { Distribution = "debian", Suite = "trixie", Components = ["main"], Mirror = "http://deb.debian.org/debian", RootfsDigest = "sha256:" + new string('b', 64) },
            BasePackages = [], ToolsetPackages = toolsets, ExtraPackages = [],
        };
        var before = Lock(P("a", "1"), P("b", "1"), P("c", "1"));

        Assert.Null(PackageDiff.ChangeLine(before, Lock(P("a", "1"), P("b", "1"), P("c", "1"))));
        Assert.Equal("lock changed: +1 −1 ~1", PackageDiff.ChangeLine(before, Lock(P("a", "2"), P("b", "1"), P("d", "1"))));
        Assert.Equal("new lock: +1 −0 ~0", PackageDiff.ChangeLine(null, Lock(P("a", "1"))));
        Assert.Equal("lock changed: +0 −0 ~0 (same packages; the spec or base changed)", PackageDiff.ChangeLine(before, before with { SpecDigest = "sha256:" + new string('c', 64) }));
    }
}
