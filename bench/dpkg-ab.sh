#!/usr/bin/env bash
# Issue 13 goal 4: one dpkg idea for an environment's package layer, measured side by side with dpkg as it was.
# Installs IMAGE's locked toolset packages (/opt/dsvm/lock/toolsets.txt) in a fresh container of the base image, from
# the .deb files already in the build package cache (no network, no download in the timing), with and without the
# idea, in ROUNDS interleaved rounds (order alternating). Prints seconds per install, the files in the container
# afterwards, and the load average at its end (a shared machine's load swings the numbers).
#   unsafe-io    dpkg without fsync (`--force-unsafe-io`, what Docker's own Debian images set): not adopted
#   path-filter  the images' dpkg path filter (src/Dsvm.Images/Resources/dpkg-filter.cfg: /usr/share/nodejs left out
#                but what Node.js and other packages need, docs/environments.md): adopted
# Usage: bench/dpkg-ab.sh unsafe-io|path-filter [ROUNDS] [IMAGE]   (defaults: 1, dsvm/minimal:latest). Needs the
# package cache filled by a build (DSVM_HOME/cache/packages, default /var/tmp/opendsvm-tests).
set -euo pipefail
idea=${1:?usage: bench/dpkg-ab.sh unsafe-io|path-filter [ROUNDS] [IMAGE]}
rounds=${2:-1}
image=${3:-dsvm/minimal:latest}
case "$idea" in
  unsafe-io) with=" -o Dpkg::Options::=--force-unsafe-io"; setup=":" ;;
  path-filter) with=""; setup="cp /x/filter.cfg /etc/dpkg/dpkg.cfg.d/dsvm-filter" ;;
  *) echo "unknown idea '$idea': unsafe-io or path-filter" >&2; exit 2 ;;
esac
debs=${DSVM_HOME:-/var/tmp/opendsvm-tests}/cache/packages/deb.debian.org/debs
base=$(docker images --format '{{.Repository}}:{{.Tag}}' 'dsvm-base/*' | head -n 1)
[ -n "$base" ] || { echo "no dsvm-base image: build an environment first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
docker run --rm --entrypoint cat "$image" /opt/dsvm/lock/toolsets.txt > "$work/toolsets.txt"
python3 "$(dirname "$0")/locked-debs.py" "$work" "$debs"
cp "$(dirname "$0")/../src/Dsvm.Images/Resources/dpkg-filter.cfg" "$work/filter.cfg"
echo "round mode seconds files load"
for round in $(seq 1 "$rounds"); do
  # The order alternates per round, so neither side always runs first (on a warmer page cache or a quieter machine).
  order="without $idea"; [ $((round % 2)) -eq 0 ] && order="$idea without"
  for mode in $order; do
    opt=""; prepare=":"; [ "$mode" = "$idea" ] && opt="$with" && prepare="$setup"
    start=$(date +%s.%N)
    files=$(docker run --rm -v "$debs:/debs:ro" -v "$work:/x:ro" --entrypoint sh "$base" -c \
      "export DEBIAN_FRONTEND=noninteractive; $prepare; xargs -a /x/files.txt apt-get install -y -q --no-install-recommends --allow-downgrades$opt >/tmp/log 2>&1 || { tail -n 20 /tmp/log >&2; exit 1; }; find / -xdev | wc -l")
    end=$(date +%s.%N)
    python3 -c "print($round, '$mode', round($end - $start, 1), $files, open('/proc/loadavg').read().split()[0])"
  done
done
