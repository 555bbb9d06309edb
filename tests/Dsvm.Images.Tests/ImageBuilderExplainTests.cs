using Dsvm.Core.Specs;

namespace Dsvm.Images.Tests;

public sealed class ImageBuilderExplainTests
{
    private static readonly EnvironmentSpec Spec = new() { Name = "demo", Directory = "envs/demo" };

    [Fact]
    public void MissingPinnedVersion_NamesThePackageAndTheLockCommand()
    {
        string[] tail =
        [
            "Step 6/20 : RUN apt-get update -q  && xargs -a /opt/dsvm/lock/toolsets.txt apt-get install ...",
            "Reading package lists...",
            "E: Version '1.2' for 'foo' was not found",
        ];

        var message = ImageBuilder.Explain(tail, tail[0], Spec);

        Assert.Contains("foo=1.2", message, StringComparison.Ordinal);
        Assert.Contains("`dsvm env lock envs/demo`", message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine("envs/demo", "environment.lock"), message, StringComparison.Ordinal);
    }

    [Fact]
    public void SeveralMissingVersions_AreAllNamedOnce()
    {
        string[] tail =
        [
            "E: Version '1.2' for 'foo' was not found",
            "E: Version '1:3.0-1' for 'bar' was not found",
            "E: Version '1.2' for 'foo' was not found",
        ];

        var message = ImageBuilder.Explain(tail, "", Spec);

        Assert.Contains("foo=1.2, bar=1:3.0-1 ", message, StringComparison.Ordinal);
    }

    [Fact]
    public void LockMismatch_ListsTheDiffLines()
    {
        string[] tail =
        [
            "Step 9/20 : RUN dpkg-query ...",
            "DSVM-LOCK-MISMATCH: the installed packages differ from environment.lock:",
            "--- /opt/dsvm/lock/installed.txt",
            "+++ /tmp/actual.txt",
            "@@ -1,3 +1,3 @@",
            " apt=3.0.4",
            "-bash=5.2.37-2",
            "+bash=5.2.37-2+b10",
            " tini=0.19.0-1",
        ];

        var message = ImageBuilder.Explain(tail, tail[0], Spec);

        Assert.Equal(
            "the image does not match environment.lock (the base drifted?); run `dsvm env lock` again:\n  -bash=5.2.37-2\n  +bash=5.2.37-2+b10",
            message);
    }

    [Fact]
    public void ALinkIntoWhatTheDpkgFilterLeavesOut_IsNamedWithItsPackageAndTheFix()
    {
        string[] tail =
        [
            "Step 7/20 : RUN apt-get update -q  && xargs -a /opt/dsvm/lock/extra.txt apt-get install ...",
            "Setting up r-cran-leaflet (2.2.2+dfsg-1) ...",
            "DSVM-DPKG-FILTER: these links point into /usr/share/nodejs, which /etc/dpkg/dpkg.cfg.d/dsvm-filter leaves out:",
            "/usr/lib/R/site-library/leaflet/htmlwidgets/lib/leaflet.js -> /usr/share/nodejs/leaflet/dist/leaflet.js (r-cran-leaflet)",
        ];

        var message = ImageBuilder.Explain(tail, tail[0], Spec);

        Assert.Equal(
            "a package links into /usr/share/nodejs, which the image leaves out (src/Dsvm.Images/Resources/dpkg-filter.cfg; add a path-include line for what it needs, see docs/environments.md):\n"
            + "  /usr/lib/R/site-library/leaflet/htmlwidgets/lib/leaflet.js -> /usr/share/nodejs/leaflet/dist/leaflet.js (r-cran-leaflet)",
            message);
    }

    [Fact]
    public void AnAlternativeWhoseFileIsLeftOut_NamesThePackageTheFileAndTheFix()
    {
        // What dpkg printed here before the filter kept node-babel7's scripts (bench/dpkg-ab.sh path-filter).
        string[] tail =
        [
            "Step 7/20 : RUN apt-get update -q  && xargs -a /opt/dsvm/lock/toolsets.txt apt-get install ...",
            "Setting up node-babel7 (7.20.15+ds1+~cs214.269.168-8) ...",
            "update-alternatives: error: alternative path /usr/bin/babeljs-7 doesn't exist",
            "dpkg: error processing package node-babel7 (--configure):",
            " installed node-babel7 package post-installation script subprocess returned error exit status 2",
            "dpkg: dependency problems prevent configuration of jupyterlab:",
            "dpkg: error processing package jupyterlab (--configure):",
            "E: Sub-process /usr/bin/dpkg returned an error code (1)",
        ];

        var message = ImageBuilder.Explain(tail, tail[0], Spec);

        Assert.Equal(
            "node-babel7 could not be set up: update-alternatives found no file at /usr/bin/babeljs-7. If that file is or links into "
            + "/usr/share/nodejs, which the image leaves out (src/Dsvm.Images/Resources/dpkg-filter.cfg), add a path-include line for it there (see docs/environments.md)",
            message);
    }

    [Fact]
    public void AFailureAfterThePassedLockCheck_IsNotTakenForALockMismatch()
    {
        // The builder echoes each step's command, the lock check's marker text included.
        string[] tail =
        [
            "Step 10/21 : RUN dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\\n' | awk '$1 == \"ii\" { print $2 }' | LC_ALL=C sort > /tmp/actual.txt  && if ! diff -u /opt/dsvm/lock/installed.txt /tmp/actual.txt > /tmp/lock.diff; then       echo 'DSVM-LOCK-MISMATCH: the installed packages differ from environment.lock:'; cat /tmp/lock.diff; exit 1; fi  && rm -f /tmp/actual.txt /tmp/lock.diff",
            " ---> Running in 0123456789ab",
            " ---> 89abcdef0123",
            "Step 12/21 : COPY files/0 \"/etc/skel/x\"",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat files/0: file does not exist",
        ];

        var message = ImageBuilder.Explain(tail, tail[3], Spec);

        Assert.StartsWith("docker build failed at Step 12/21 : COPY files/0", message, StringComparison.Ordinal);
    }

    [Fact]
    public void OtherFailure_NamesTheStepAndTheLastLines_WithoutContainerIds()
    {
        string[] tail =
        [
            "Step 3/20 : RUN groupadd --gid 1000 dsvm",
            " ---> Running in 0123456789ab",
            "groupadd: GID '1000' already exists",
            "The command '/bin/bash -o pipefail -euc groupadd' returned a non-zero code: 4",
        ];

        var message = ImageBuilder.Explain(tail, tail[0], Spec);

        Assert.StartsWith("docker build failed at Step 3/20 : RUN groupadd --gid 1000 dsvm:\n", message, StringComparison.Ordinal);
        Assert.Contains("groupadd: GID '1000' already exists", message, StringComparison.Ordinal);
        Assert.DoesNotContain("---> Running", message, StringComparison.Ordinal);
    }

    [Fact]
    public void FailureBeforeAnyStep_SaysTheStart() =>
        Assert.StartsWith("docker build failed at the start:", ImageBuilder.Explain(["no such image"], "", Spec), StringComparison.Ordinal);
}
