#!/usr/bin/env bash
# The build's package cache, measured: an environment (ENV, default `minimal`; copied under the name `benchcache`, so
# no shared image is replaced) built with `dsvm env build --frozen --no-cache` (no engine layer cache) first with an EMPTY
# package cache, then with the cache that build filled (WARM), in ROUNDS interleaved rounds (a fresh empty cache
# each round). Prints per-build seconds, what came from the mirror, and the warm/empty ratio.
# A `datascience` round is two cold builds of ~13 minutes each: run it on a quiet machine.
# Usage: bench/build-cache.sh [ROUNDS] [ENV]   (defaults 1, minimal). Uses the engine: run it under flock /tmp/dsvm-docker-tests.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
source_env=${2:-minimal}
out=.dsvm/bench-build-cache
export DSVM_HOME=${DSVM_BENCH_HOME:-/var/tmp/opendsvm-tests}   # its base image and base rootfs are reused
dotnet build src/Dsvm.Cli -c Release --artifacts-path "$out/cli" -nologo -v quiet -clp:ErrorsOnly 1>&2
dsvm() { dotnet "$out/cli/bin/Dsvm.Cli/release/dsvm.dll" "$@"; }
env_dir="$out/benchcache"
rm -rf "$env_dir" && mkdir -p "$out" && cp -r "environments/$source_env" "$env_dir"
sed -i 's/^name: .*$/name: benchcache/' "$env_dir/environment.yaml"
rm -f "$env_dir/environment.lock"
dsvm env lock "$env_dir" -o json >/dev/null   # not measured
cleanup() { docker images --format '{{.Repository}}:{{.Tag}}' dsvm/benchcache | xargs -r docker rmi >/dev/null 2>&1 || true; rm -rf "$out/cache"; }
trap cleanup EXIT
build() {   # build CACHE_DIR -> "seconds misses hits mib_from_mirror"
  DSVM_PACKAGE_CACHE="$1" dsvm env build "$env_dir" --frozen --no-cache -o json | python3 -c '
import json, sys
r = json.load(sys.stdin)
c = r.get("packageCache") or {}
print("%.1f %d %d %.1f" % (r["seconds"], c.get("misses", 0), c.get("hits", 0), c.get("bytesFromMirror", 0) / 2**20))'
}
printf '%-6s %-6s %9s %9s %9s %12s\n' round cache seconds fetched "cache hit" "MiB mirror"
empty_all=(); warm_all=()
for i in $(seq 1 "$rounds"); do
  rm -rf "$out/cache" && mkdir -p "$out/cache"
  read -r s m h b < <(build "$out/cache"); empty_all+=("$s")
  printf '%-6s %-6s %9s %9s %9s %12s\n' "$i" empty "$s" "$m" "$h" "$b"
  read -r s m h b < <(build "$out/cache"); warm_all+=("$s")
  printf '%-6s %-6s %9s %9s %9s %12s\n' "$i" warm "$s" "$m" "$h" "$b"
done
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
me=$(printf '%s\n' "${empty_all[@]}" | median); mw=$(printf '%s\n' "${warm_all[@]}" | median)
echo "median: empty cache ${me} s, warm cache ${mw} s, warm/empty $(awk -v a="$mw" -v b="$me" 'BEGIN { printf "%.2f", a / b }')"
