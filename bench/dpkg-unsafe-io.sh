#!/usr/bin/env bash
# Issue 13 goal 4, one idea measured: does dpkg without fsync (`--force-unsafe-io`, what Docker's own Debian images
# set) make an environment's package layer faster here? Installs the `minimal` image's locked toolset packages
# (/opt/dsvm/lock/toolsets.txt of IMAGE) in a fresh container of the base image, from the .deb files already in the
# build package cache (no network, no download in the timing), with and without the option, in ROUNDS interleaved
# rounds (order alternating). Prints seconds per install and the load average at its end (a shared machine's load swings the numbers).
# Usage: bench/dpkg-unsafe-io.sh [ROUNDS] [IMAGE]   (defaults: 2, dsvm/minimal:latest). Needs the package cache
# filled by a build (DSVM_HOME/cache/packages, default /var/tmp/opendsvm-tests).
set -euo pipefail
rounds=${1:-2}
image=${2:-dsvm/minimal:latest}
debs=${DSVM_HOME:-/var/tmp/opendsvm-tests}/cache/packages/deb.debian.org/debs
base=$(docker images --format '{{.Repository}}:{{.Tag}}' 'dsvm-base/*' | head -n 1)
[ -n "$base" ] || { echo "no dsvm-base image: build an environment first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
docker run --rm --entrypoint cat "$image" /opt/dsvm/lock/toolsets.txt > "$work/toolsets.txt"
python3 "$(dirname "$0")/locked-debs.py" "$work" "$debs"
echo "round mode seconds load"
for round in $(seq 1 "$rounds"); do
  # The order alternates per round, so neither mode always runs first (on a warmer page cache or a quieter machine).
  order="fsync unsafe-io"; [ $((round % 2)) -eq 0 ] && order="unsafe-io fsync"
  for mode in $order; do
    opt=""; [ "$mode" = unsafe-io ] && opt="-o Dpkg::Options::=--force-unsafe-io"
    start=$(date +%s.%N)
    docker run --rm -v "$debs:/debs:ro" -v "$work:/x:ro" --entrypoint sh "$base" -c \
      "export DEBIAN_FRONTEND=noninteractive; xargs -a /x/files.txt apt-get install -y -q --no-install-recommends --allow-downgrades $opt >/tmp/log 2>&1 || { tail -n 20 /tmp/log; exit 1; }"
    end=$(date +%s.%N)
    python3 -c "print($round, '$mode', round($end - $start, 1), open('/proc/loadavg').read().split()[0])"
  done
done
