#!/usr/bin/env bash
# Issue 13 goal 4: where an environment's package layer spends its time. Installs an image's locked toolset packages
# (/opt/dsvm/lock/toolsets.txt of IMAGE) in a fresh container of the base image from the .deb files already in the
# build package cache (no download in the timing), as the build's `apt-get install` does, with apt's status lines
# (APT::Status-Fd) time-stamped. The time between two status lines goes to the phase the first one opened:
# unpack ("Preparing", "Unpacking"), configure ("Preparing to configure", "Configuring": maintainer scripts,
# py3compile, ...), after "Installed" (dpkg ending one run and starting the next), other lines by their first
# words (triggers); before the first line is apt's own planning.
# Prints the phases' seconds and the packages whose configure took longest.
# Usage: [APT_OPTS='-o K=V ...'] bench/install-breakdown.sh [IMAGE]   (default dsvm/minimal:latest; APT_OPTS are
# added to apt-get's command line). Needs the package cache filled by a
# build (DSVM_HOME/cache/packages, default /var/tmp/opendsvm-tests).
set -euo pipefail
image=${1:-dsvm/minimal:latest}
debs=${DSVM_HOME:-/var/tmp/opendsvm-tests}/cache/packages/deb.debian.org/debs
here=$(cd "$(dirname "$0")" && pwd)
base=$(docker images --format '{{.Repository}}:{{.Tag}}' 'dsvm-base/*' | head -n 1)
[ -n "$base" ] || { echo "no dsvm-base image: build an environment first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
docker run --rm --entrypoint cat "$image" /opt/dsvm/lock/toolsets.txt > "$work/toolsets.txt"
python3 "$here/locked-debs.py" "$work" "$debs"
docker run --rm -v "$debs:/debs:ro" -v "$work:/x" -e APT_OPTS="${APT_OPTS:-}" --entrypoint bash "$base" -c '
  export DEBIAN_FRONTEND=noninteractive
  start=$(date +%s.%N)
  exec 3> >(while IFS= read -r l; do echo "$(date +%s.%N) $l"; done > /x/status.txt)
  xargs -a /x/files.txt apt-get install -y -q --no-install-recommends --allow-downgrades -o APT::Status-Fd=3 $APT_OPTS \
    > /x/apt.log 2>&1 || { tail -n 20 /x/apt.log; exit 1; }
  end=$(date +%s.%N)
  exec 3>&-
  sleep 1
  echo "$start $end" > /x/span.txt'
python3 - "$work" <<'PY'
import collections, sys
work = sys.argv[1]
start, end = map(float, open(f"{work}/span.txt").read().split())
lines = []
for raw in open(f"{work}/status.txt"):
    ts, _, rest = raw.rstrip("\n").partition(" ")
    parts = rest.split(":", 3)
    if len(parts) == 4 and parts[0] == "pmstatus":
        lines.append((float(ts), parts[1], parts[3]))
def phase(msg):
    if msg.startswith(("Preparing to configure", "Configuring")):
        return "configure"
    if msg.startswith(("Preparing", "Unpacking")):
        return "unpack"
    if msg.startswith("Installed"):
        return "after a package is installed (dpkg between runs: its database read and written)"
    return "other: " + msg.split()[0]
totals = collections.Counter()
per_package = collections.Counter()
totals["apt planning (before dpkg)"] = (lines[0][0] - start) if lines else end - start
for (t, pkg, msg), nxt in zip(lines, lines[1:] + [(end, "", "")]):
    p = phase(msg)
    totals[p] += nxt[0] - t
    if p == "configure":
        per_package[pkg] += nxt[0] - t
print(f"{len(lines)} status lines, {end - start:.1f} s in all")
print("phase seconds share")
for name, s in totals.most_common():
    print(f"{name} {s:.1f} {s / (end - start):.0%}")
print("slowest configures (s):", ", ".join(f"{p} {s:.1f}" for p, s in per_package.most_common(12)))
PY
