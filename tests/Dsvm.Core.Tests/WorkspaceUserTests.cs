using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

/// <summary>Issue 9, "what must work" 7: the workspace uid is not an account a host hands out.</summary>
public sealed class WorkspaceUserTests
{
    [Fact]
    public void The_workspace_uid_is_in_debians_reserved_range_and_inside_a_64k_userns_mapping()
    {
        Assert.InRange(WorkspaceUser.Uid, 65000, 65533);
        Assert.NotEqual(WorkspaceUser.LegacyUid, WorkspaceUser.Uid);
        Assert.Equal(WorkspaceUser.DockerUser, $"{WorkspaceUser.Uid}:{WorkspaceUser.Gid}");
        Assert.Equal(WorkspaceUser.UidText, WorkspaceUser.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(WorkspaceUser.LegacyUidText, WorkspaceUser.LegacyUid.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Host_accounts_with_the_workspace_uid_are_found_by_uid_not_by_name()
    {
        const string passwd = """
            root:x:0:0:root:/root:/bin/bash
            dsvm:x:1000:1000:first human:/home/dsvm:/bin/bash
            # carol:x:65530:65530::/home/carol:/bin/sh
            carol:x:65530:100::/home/carol:/bin/sh
            broken:x:065530x:0::/:/bin/false
            short:x
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
            """;
        Assert.Equal("carol", Assert.Single(WorkspaceUser.HostAccountsWithUid(passwd)));
        Assert.Equal("dsvm", Assert.Single(WorkspaceUser.HostAccountsWithUid(passwd, WorkspaceUser.LegacyUid)));
        Assert.Empty(WorkspaceUser.HostAccountsWithUid(""));
    }

    [Fact]
    public void The_take_over_script_changes_only_legacy_files_and_the_home_directory_last()
    {
        var script = WorkspaceUser.TakeOverScript("/home/dsvm");
        var lines = script.Split('\n');
        Assert.StartsWith("set -eu", lines[0], StringComparison.Ordinal);
        Assert.Contains("-uid 1000 -exec chown -h 65530 {} +", script, StringComparison.Ordinal);
        Assert.Contains("-gid 1000 -exec chgrp -h 65530 {} +", script, StringComparison.Ordinal);
        Assert.All(lines.Where(l => l.StartsWith("find", StringComparison.Ordinal)), l => Assert.Contains("-xdev -mindepth 1", l, StringComparison.Ordinal));
        Assert.Equal("chown 65530:65530 \"$h\"", lines[^1]);
    }
}
