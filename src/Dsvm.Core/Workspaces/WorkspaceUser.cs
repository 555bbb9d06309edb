using System.Globalization;

namespace Dsvm.Core.Workspaces;

/// <summary>
/// The account workspace processes run as, on every backend (image, exec, Swarm, Kubernetes, VM guest): one constant
/// that every place reads.
/// <para>
/// Not 1000: that is the first ordinary account on most hosts, and a host account with the workspace's uid can read
/// its processes' environment (the Jupyter token) and its home through <c>/proc</c> and the volume. 65530 lies in
/// Debian's reserved range 65000-65533 (never allocated to accounts), above systemd's dynamic users (61184-65519) and
/// below 65536, so it stays inside the 64 Ki ids a user-namespace mapping (Docker userns-remap, Kubernetes
/// <c>hostUsers: false</c>) gives a container. See docs/security.md, control 7.
/// </para>
/// </summary>
public static class WorkspaceUser
{
    public const int Uid = 65530;
    public const int Gid = 65530;
    public const string Name = "dsvm";

    /// <summary>The uid (and gid) of the images before 65530; homes holding its files are taken over at start.</summary>
    public const int LegacyUid = 1000;

    /// <summary>The same numbers as text, for scripts built as constants (the VM guest).</summary>
    public const string UidText = "65530";
    public const string LegacyUidText = "1000";

    /// <summary><c>uid:gid</c>, as Docker and Swarm take it.</summary>
    public const string DockerUser = UidText + ":" + UidText;

    /// <summary>
    /// A shell script, run as root with CAP_CHOWN and CAP_DAC_READ_SEARCH only, that gives the files of
    /// <paramref name="home"/> still owned by the legacy uid or gid to the workspace user. It does nothing when the
    /// home's own directory already belongs to the workspace user, and changes that directory last: a take-over
    /// killed half-way is done again at the next start. Files of other owners are left alone.
    /// </summary>
    public static string TakeOverScript(string home) => $$"""
        set -eu
        h='{{home}}'
        [ "$(stat -c %u:%g "$h")" = "{{Uid}}:{{Gid}}" ] && exit 0
        find "$h" -xdev -mindepth 1 -uid {{LegacyUid}} -exec chown -h {{Uid}} {} +
        find "$h" -xdev -mindepth 1 -gid {{LegacyUid}} -exec chgrp -h {{Gid}} {} +
        chown {{Uid}}:{{Gid}} "$h"
        """;

    /// <summary>The host accounts in an <c>/etc/passwd</c> text whose uid is <paramref name="uid"/> (the workspace's by default).</summary>
    public static IReadOnlyList<string> HostAccountsWithUid(string passwd, int uid = Uid)
    {
        var found = new List<string>();
        foreach (var line in passwd.Split('\n'))
        {
            var f = line.Split(':');
            if (f.Length >= 3 && !line.StartsWith('#')
                && int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var u) && u == uid)
            {
                found.Add(f[0]);
            }
        }

        return found;
    }
}
