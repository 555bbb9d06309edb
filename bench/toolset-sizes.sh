#!/usr/bin/env bash
# What each toolset of an environment costs in its built image (a Markdown table, from dpkg's Installed-Size):
#   bench/toolset-sizes.sh environments/datascience [IMAGE]     (IMAGE defaults to dsvm/<name>:latest)
# Uses the Docker engine: wrap it in `flock /tmp/dsvm-docker-tests.lock` on a shared machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$1"
name="$(sed -n 's/^name: *//p' "$dir/environment.yaml")"
image="${2:-dsvm/$name:latest}"
# The spec's toolsets (block or flow list), core first, as the catalog resolves them.
toolsets="$(python3 -c '
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^toolsets:\s*\[(.*?)\]", text, re.M | re.S)
block = re.split(r"\n(?=\S)", text.split("\ntoolsets:", 1)[1])[0] if "\ntoolsets:" in text else ""
names = [t.strip() for t in m.group(1).split(",")] if m else re.findall(r"^\s+- ([a-z0-9-]+)\s*$", block, re.M)
print(" ".join(["core"] + [n for n in names if n]))' "$dir/environment.yaml")"
catalog="$(mktemp)"
trap 'rm -f "$catalog"' EXIT
"$root/dsvm" env toolsets --output json >"$catalog"
# shellcheck disable=SC2086
docker run --rm -i --network none --entrypoint python3 -v "$root/bench/toolset-sizes.py:/tmp/toolset-sizes.py:ro" \
  "$image" /tmp/toolset-sizes.py $toolsets <"$catalog"
docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "\nimage %s: %.2f GB (%.2f GiB)\n", "'"$image"'", $1 / 1e9, $1 / 2^30 }'
