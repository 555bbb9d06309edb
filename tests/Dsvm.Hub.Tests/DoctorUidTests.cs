using Dsvm.Cli;
using Dsvm.Core.Workspaces;

namespace Dsvm.Hub.Tests;

/// <summary>Issue 9, "what must work" 7: <c>dsvm doctor</c> fails the check, with the fix, when a host account has the workspace uid.</summary>
public sealed class DoctorUidTests
{
    private const string Passwd = "root:x:0:0:root:/root:/bin/bash\ncarol:x:65530:65530::/home/carol:/bin/sh\n";

    [Fact]
    public void A_host_account_with_the_workspace_uid_fails_the_check_and_names_the_fix()
    {
        var f = DoctorCommand.WorkspaceUidFinding(Passwd, usernsRemap: false);
        Assert.False(f.Ok);
        Assert.Equal("workspace uid", f.Check);
        Assert.Contains("host account carol", f.Detail, StringComparison.Ordinal);
        Assert.Contains("usermod -u NEWUID carol", f.Detail, StringComparison.Ordinal);
        Assert.Contains("userns-remap", f.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void No_such_account_or_a_remapping_engine_passes()
    {
        Assert.True(DoctorCommand.WorkspaceUidFinding("root:x:0:0:root:/root:/bin/bash\n", usernsRemap: false).Ok);
        Assert.True(DoctorCommand.WorkspaceUidFinding(Passwd, usernsRemap: true).Ok);
        Assert.Contains($"{WorkspaceUser.Uid}", DoctorCommand.WorkspaceUidFinding("", usernsRemap: false).Detail, StringComparison.Ordinal);
    }
}
