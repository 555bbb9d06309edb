#!/usr/bin/env bash
# What the forwarder of an isolated Swarm workspace costs (docs/swarm.md): Jupyter's `api/status` through the relay the
# forwarder runs (SwarmWorkspaceBackend.RelayScript, read from the source, run as the forwarder runs it: the image's
# python3, uid 65530, read-only, no capabilities, 0.5 CPU, 64 MiB) beside the same Jupyter reached at its published port,
# on this host's engine, in interleaved rounds (order alternated). The relay's target is on an --internal network, as
# the server is on its internal overlay. Not measured here: the overlay's VXLAN hop (server and forwarder share a node).
# Prints wrk's req/s, p50 and p99 per round and the median ratio relay / direct.
# Usage: bench/forwarder-relay.sh [ROUNDS] [CONNECTIONS]   (default 3 rounds, 10 connections; 5 s runs after a 1 s warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
conns=${2:-10}
image=${DSVM_BENCH_IMAGE:-$(docker images --format '{{.Repository}}:{{.Tag}}' dsvm/minimal | grep -v ':latest$' | head -1)}
[ -n "$image" ] || { echo "forwarder-relay: no dsvm/minimal image: run \`dsvm env build minimal\` first" >&2; exit 2; }
command -v wrk >/dev/null || { echo "forwarder-relay: wrk is missing: apt-get install wrk" >&2; exit 2; }
relay=$(awk '/RelayScript = """/ { f = 1; next } f && /""";/ { exit } f' src/Dsvm.Swarm/SwarmWorkspaceBackend.cs | sed 's/^        //')
[ -n "$relay" ] || { echo "forwarder-relay: RelayScript not found in src/Dsvm.Swarm/SwarmWorkspaceBackend.cs" >&2; exit 2; }
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
run=bench-relay-$$
cleanup() { docker rm -f "$run-direct" "$run-target" "$run-relay" >/dev/null 2>&1 || true; docker network rm "$run" >/dev/null 2>&1 || true; }
trap cleanup EXIT
docker network create --internal "$run" >/dev/null
jupyter=(-e "JUPYTER_TOKEN=$token" -u 65530:65530 -e HOME=/tmp --cpus 1 -m 1g)
docker run -d --name "$run-direct" -p 127.0.0.1::8888 "${jupyter[@]}" "$image" >/dev/null
docker run -d --name "$run-target" --network "$run" --network-alias target "${jupyter[@]}" "$image" >/dev/null
docker run -d --name "$run-relay" -p 127.0.0.1::8888 -u 65530:65530 --read-only --cap-drop ALL --cpus 0.5 -m 64m \
  -e PYTHONDONTWRITEBYTECODE=1 --entrypoint python3 "$image" -c "$relay" target 8888 >/dev/null
docker network connect "$run" "$run-relay"
port() { docker port "$1" 8888/tcp | head -1 | sed 's/.*://'; }
declare -A url=([direct]="http://127.0.0.1:$(port "$run-direct")/api/status" [relay]="http://127.0.0.1:$(port "$run-relay")/api/status")
for t in direct relay; do
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null -H "Authorization: token $token" "${url[$t]}" 2>/dev/null && break
    sleep 0.5
  done
  curl -fsS -o /dev/null -H "Authorization: token $token" "${url[$t]}" || { echo "forwarder-relay: $t does not answer at ${url[$t]}" >&2; exit 1; }
done
# wrk's "Requests/sec" and its 50% and 99% latency lines, in ms.
measure() {
  wrk -t1 -c"$conns" -d1s -H "Authorization: token $token" "${url[$1]}" >/dev/null
  wrk -t2 -c"$conns" -d5s --latency -H "Authorization: token $token" "${url[$1]}" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err " " $0 }
    END { printf "%.0f %.2f %.2f%s\n", rps, p50, p99, err }'
}
printf '%-6s %-7s %9s %8s %8s\n' round target "req/s" "p50 ms" "p99 ms"
ratios=()
for i in $(seq 1 "$rounds"); do
  if (( i % 2 )); then order=(direct relay); else order=(relay direct); fi
  declare -A rps=()
  for t in "${order[@]}"; do
    read -r r p50 p99 rest < <(measure "$t")
    rps[$t]=$r
    printf '%-6s %-7s %9s %8s %8s %s\n' "$i" "$t" "$r" "$p50" "$p99" "${rest:-}"
  done
  ratios+=("$(awk -v a="${rps[relay]}" -v b="${rps[direct]}" 'BEGIN { printf "%.2f", a / b }')")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "relay / direct req/s per round: ${ratios[*]}; median $median ($conns connections, image $image)"
