using Dsvm.Core;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Images.Tests;

public sealed class EnvironmentDiffTests
{
    // `docker history --no-trunc --human=false --format '{{.ID}}\t{{.Size}}\t{{.CreatedBy}}'` of a minimal image (newest first).
    private const string HistoryA = """
        sha256:aaaa09	0	/bin/bash -o pipefail -euc #(nop)  ENTRYPOINT ["/usr/bin/tini" "--" "/opt/dsvm/bin/dsvm-start"]
        sha256:aaaa08	0	/bin/bash -o pipefail -euc #(nop)  LABEL io.opendsvm.base=debian/trixie
        sha256:aaaa07	799	/bin/bash -o pipefail -euc #(nop) COPY dir:3be99caee17df72cc94569d77ad7f192d6062f7d7d7ea8f95e2b573be30c2281 in /opt/dsvm/samples/
        sha256:aaaa06	0	/bin/bash -o pipefail -euc dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" { print $2 }'
        sha256:aaaa05	25504	/bin/bash -o pipefail -euc #(nop) COPY file:871ec91abf16063d7078adc35ae3a07ff1cb54655601f410f5705716841c389c in /opt/dsvm/lock/installed.txt
        sha256:shared04	1087911647	/bin/bash -o pipefail -euc apt-get update -q  && xargs -a /opt/dsvm/lock/toolsets.txt apt-get install -y -q
        sha256:shared03	25504	/bin/bash -o pipefail -euc #(nop) COPY file:bb23eade in /opt/dsvm/lock/toolsets.txt
        sha256:shared02	8865	/bin/bash -o pipefail -euc groupadd --gid 65530 dsvm
        sha256:shared01	0	/bin/bash -o pipefail -euc #(nop)  SHELL [/bin/bash -o pipefail -euc]
        <missing>	152069112	
        """;

    // The same spec with one extra package: an extra layer, a new verification and samples layer on top.
    private const string HistoryB = """
        sha256:bbbb09	0	/bin/bash -o pipefail -euc #(nop)  ENTRYPOINT ["/usr/bin/tini" "--" "/opt/dsvm/bin/dsvm-start"]
        sha256:bbbb07	799	/bin/bash -o pipefail -euc #(nop) COPY dir:3be99caee17df72cc94569d77ad7f192d6062f7d7d7ea8f95e2b573be30c2281 in /opt/dsvm/samples/
        sha256:bbbb06	0	/bin/bash -o pipefail -euc dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" { print $2 }'
        sha256:bbbb05	25600	/bin/bash -o pipefail -euc #(nop) COPY file:0000 in /opt/dsvm/lock/installed.txt
        sha256:bbbb12	5000000	/bin/bash -o pipefail -euc apt-get update -q  && xargs -a /opt/dsvm/lock/extra.txt apt-get install -y -q
        sha256:bbbb11	100	/bin/bash -o pipefail -euc #(nop) COPY file:1111 in /opt/dsvm/lock/extra.txt
        sha256:shared04	1087911647	/bin/bash -o pipefail -euc apt-get update -q  && xargs -a /opt/dsvm/lock/toolsets.txt apt-get install -y -q
        sha256:shared03	25504	/bin/bash -o pipefail -euc #(nop) COPY file:bb23eade in /opt/dsvm/lock/toolsets.txt
        sha256:shared02	8865	/bin/bash -o pipefail -euc groupadd --gid 65530 dsvm
        sha256:shared01	0	/bin/bash -o pipefail -euc #(nop)  SHELL [/bin/bash -o pipefail -euc]
        <missing>	152069112	
        """;

    [Fact]
    public void ParseHistory_keeps_layer_steps_oldest_first_and_drops_metadata_steps()
    {
        var layers = EnvironmentDiffer.ParseHistory(HistoryA);

        Assert.Equal(
        [
            "base rootfs (imported)", "RUN groupadd --gid 65530 dsvm", "COPY → /opt/dsvm/lock/toolsets.txt",
            "RUN apt-get update -q  && xargs -a /opt/dsvm/lock/toolsets.txt apt-get install -y -q",
            "COPY → /opt/dsvm/lock/installed.txt",
            "RUN dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\\n' | awk '$1 == \"ii\" { print $2 }'",
            "COPY → /opt/dsvm/samples/",
        ], layers.Select(l => l.Step));
        Assert.Equal(1087911647, layers[3].SizeBytes);
    }

    [Fact]
    public void AlignLayers_pairs_equal_steps_marks_shared_layers_and_shows_one_sided_steps()
    {
        var rows = EnvironmentDiffer.AlignLayers(EnvironmentDiffer.ParseHistory(HistoryA), EnvironmentDiffer.ParseHistory(HistoryB));

        Assert.Equal(9, rows.Count);
        Assert.Equal(new LayerRow("base rootfs (imported)", 152069112, 152069112, false), rows[0]); // <missing> ids are never "shared"
        Assert.True(rows[1].Shared);
        Assert.True(rows[3].Shared);
        Assert.Equal(new LayerRow("COPY → /opt/dsvm/lock/extra.txt", null, 100, false), rows[4]);
        Assert.Equal(new LayerRow("RUN apt-get update -q  && xargs -a /opt/dsvm/lock/extra.txt apt-get install -y -q", null, 5000000, false), rows[5]);
        Assert.Equal(new LayerRow("COPY → /opt/dsvm/lock/installed.txt", 25504, 25600, false), rows[6]);
    }

    [Fact]
    public void LockFileFor_maps_files_folders_and_environment_names_to_their_lock()
    {
        using var dir = new TempDir();
        var spec = Path.Combine(dir.Path, "environment.yaml");
        File.WriteAllText(spec, "name: demo\n");
        var other = Path.Combine(dir.Path, "old.lock");
        File.WriteAllText(other, "x");

        Assert.Equal(Path.Combine(dir.Path, "environment.lock"), EnvironmentDiffer.LockFileFor(dir.Path));
        Assert.Equal(Path.Combine(dir.Path, "environment.lock"), EnvironmentDiffer.LockFileFor(spec));
        Assert.Equal(other, EnvironmentDiffer.LockFileFor(other));
        Assert.Null(EnvironmentDiffer.LockFileFor("dsvm/minimal:latest"));
        var missing = Assert.Throws<NotFoundException>(() => EnvironmentDiffer.LockFileFor(Path.Combine(dir.Path, "gone.lock")));
        Assert.Contains(Path.Combine(dir.Path, "gone.lock"), missing.Message, StringComparison.Ordinal);
    }
}
