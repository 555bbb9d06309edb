namespace Dsvm.Images;

/// <summary>
/// dpkg's path filter for every image (Resources/dpkg-filter.cfg): Debian's jupyterlab depends on the Node.js tooling
/// that rebuilds the lab from source, ~540 packages and three quarters of the files of an image, which the prebuilt
/// lab never reads. dpkg still installs and records those packages (the lock check is unchanged); it only does not
/// write their files under /usr/share/nodejs, but what the filter keeps.
/// </summary>
public static class DpkgFilter
{
    /// <summary>Where the filter's source is in this repository (what a failed build tells the user to edit).</summary>
    public const string SourcePath = "src/Dsvm.Images/Resources/dpkg-filter.cfg";

    /// <summary>Where the filter is in the build context.</summary>
    public const string ContextPath = "dsvm/dpkg/filter.cfg";

    /// <summary>Where dpkg reads it in the image (it stays, so a later layer's packages are filtered the same way).</summary>
    public const string ImagePath = "/etc/dpkg/dpkg.cfg.d/dsvm-filter";

    /// <summary>The line a build prints when a package links into what the filter leaves out.</summary>
    public const string Marker = "DSVM-DPKG-FILTER";

    public static string Config { get; } = Read();

    /// <summary>
    /// Shell for the end of a package layer's RUN. The commands of the tools left out go (their links in /usr/bin,
    /// /usr/sbin and /etc/alternatives would point to nothing), and any other link into /usr/share/nodejs that points
    /// to nothing (but a document's example) fails the build, naming it and its package, rather than leaving a package
    /// broken in the image.
    /// </summary>
    public const string AfterInstall =
        " && find /usr/bin /usr/sbin /etc/alternatives -xtype l -lname '*share/nodejs/*' -delete \\\n"
        + " && find /usr/bin /usr/sbin -xtype l -lname '/etc/alternatives/*' -delete \\\n"
        + " && dangling=\"$(find /usr /etc /opt -xdev -xtype l -lname '*share/nodejs/*' ! -path '/usr/share/doc/*')\" \\\n"
        + " && if [ -n \"$dangling\" ]; then echo '" + Marker + ": these links point into /usr/share/nodejs, which " + ImagePath + " leaves out:'; \\\n"
        + "      for l in $dangling; do echo \"$l -> $(readlink \"$l\") ($(dpkg -S \"$l\" 2>/dev/null | cut -d: -f1))\"; done; exit 1; fi \\\n";

    private static string Read()
    {
        using var stream = typeof(DpkgFilter).Assembly.GetManifestResourceStream("dpkg-filter.cfg")
            ?? throw new InvalidOperationException("dpkg-filter.cfg is not embedded in Dsvm.Images");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
