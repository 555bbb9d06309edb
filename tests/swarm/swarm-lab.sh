#!/usr/bin/env bash
# A private 3-node Docker Swarm on this one machine, for the swarm backend's tests and benchmark (test
# infrastructure only: the backend knows nothing of namespaces).
#
#   swarm-lab.sh up     clean leftovers of a crashed run, then build everything
#   swarm-lab.sh down   tear everything down (services, swarm, engines, registry, namespaces, bridge, data)
#   swarm-lab.sh reuse  keep a running lab (removing its services), else as up: for iterating on tests only
#   swarm-lab.sh restart N   stop node N's engine and start it again (a test of a manager or worker restart)
#
# Layout: bridge dsvmsw0 10.211.0.1/24 in the root namespace; namespaces dsvmsw-n1..n3 with veth eth0 at
# 10.211.0.11..13 (no default route: the nodes reach nothing but this /24); one dockerd (with its own
# containerd) per namespace, each in its own UTS namespace (hostname dsvmsw-nX) and cgroup parent; n1
# initialises the swarm, n2 and n3 join as workers; n3 advertises one NVIDIA-GPU generic resource (for the
# GPU placement test: nothing uses a real GPU). A distribution registry serves one storage folder at
# 10.211.0.1:5000 (nodes pull, insecure-registry) and 127.0.0.1:5000 (the host engine pushes: loopback
# registries need no TLS). The nodes take any registry on the lab's /24 without TLS (a test starts one that
# needs a login). Engines: unix:///run/dsvm-swarm/nX/docker.sock. Needs root, iproute2, docker.io,
# docker-registry.
set -euo pipefail

NODES=(1 2 3)
BRIDGE=dsvmsw0
NET=10.211.0
STATE=/run/dsvm-swarm
DATA=/var/lib/dsvm-swarm
LOGS=${DSVM_SWARM_LOGS:-/var/log/dsvm-swarm}

log() { printf '[swarm-lab] %s\n' "$*" >&2; }
sock() { echo "unix://$STATE/n$1/docker.sock"; }
dk() { local n=$1; shift; docker -H "$(sock "$n")" "$@"; }

kill_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# One node's dockerd in its namespace (the swarm state lives in its data root, so a restart rejoins the swarm).
start_engine() {
  local n=$1 ns="dsvmsw-n$1" extra=()
  [ "$n" = 3 ] && extra+=(--node-generic-resource NVIDIA-GPU=1)
  mkdir -p "$STATE/n$n" "$DATA/n$n"
  # Own UTS namespace for a distinct node hostname; own containerd (dockerd starts it), own cgroup parent.
  # nsenter (not `ip netns exec`, which remounts /sys and so hides the cgroup hierarchy from dockerd).
  setsid nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$0"; exec "$@"' "dsvmsw-n$n" \
    dockerd --data-root "$DATA/n$n" --exec-root "$STATE/n$n" --pidfile "$STATE/n$n/dockerd.pid" \
    -H "$(sock "$n")" --containerd-namespace "dsvmsw-n$n" --containerd-plugins-namespace "dsvmsw-n$n-plugins" \
    --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/dsvmsw-n$n" \
    --bip "172.31.25$n.1/24" --default-address-pool "base=10.212.$n.0/24,size=26" \
    --insecure-registry "$NET.0/24" --no-new-privileges --userland-proxy=false \
    "${extra[@]}" >>"$LOGS/dockerd-n$n.log" 2>&1 </dev/null &
}

wait_engine() {
  wait_for 60 "dockerd n$1 (see $LOGS/dockerd-n$1.log)" dk "$1" info || { tail -n 30 "$LOGS/dockerd-n$1.log" >&2; exit 1; }
}

# An operator's restart of one node's engine (dockerd stops its containers: no live-restore here), then it answers.
restart() {
  local n=$1
  [ -S "$STATE/n$n/docker.sock" ] || { log "no engine n$n to restart"; exit 1; }
  local pid
  pid=$(cat "$STATE/n$n/dockerd.pid")
  kill "$pid"
  # dockerd stops its containers first (their stop timeout is Jupyter's 10 s): wait for it to be gone.
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "dockerd n$n did not stop within 30 s"; exit 1; }
  start_engine "$n"
  wait_engine "$n"
  log "engine n$n restarted"
}

down() {
  for n in "${NODES[@]}"; do
    if [ -S "$STATE/n$n/docker.sock" ]; then
      # Services first (their containers hold volumes), then leave: a clean engine before it stops.
      if [ "$n" = 1 ]; then
        dk 1 service ls -q 2>/dev/null | xargs -r docker -H "$(sock 1)" service rm >/dev/null 2>&1 || true
      fi
      dk "$n" swarm leave --force >/dev/null 2>&1 || true
      dk "$n" ps -aq 2>/dev/null | xargs -r docker -H "$(sock "$n")" rm -f >/dev/null 2>&1 || true
    fi
  done
  for n in "${NODES[@]}"; do
    kill_pidfile "$STATE/n$n/dockerd.pid"
    # dockerd stops its own containerd; a crashed dockerd may leave it (and shims) behind.
    kill_pidfile "$STATE/n$n/containerd/containerd.pid"
    for p in $(pgrep -f -- "--root $DATA/n$n/|-namespace dsvmsw-n$n |$STATE/n$n/" 2>/dev/null || true); do
      kill "$p" 2>/dev/null || true
    done
  done
  kill_pidfile "$STATE/registry-lo.pid"
  kill_pidfile "$STATE/registry-net.pid"
  for n in "${NODES[@]}"; do
    # Mounts left inside the node's data root (overlay layers, shm, netns files) would keep rm from working.
    { grep -E " ($DATA/n$n|$STATE/n$n)[/ ]" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    { ip netns pids "dsvmsw-n$n" 2>/dev/null || true; } | xargs -r kill -9 2>/dev/null || true
    ip netns del "dsvmsw-n$n" 2>/dev/null || true
    ip link del "dsvmsw-v$n" 2>/dev/null || true
    rmdir "/sys/fs/cgroup/"*/"dsvmsw-n$n" 2>/dev/null || true
  done
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$STATE" "$DATA"
}

wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out waiting for $what"
  return 1
}

up() {
  down
  mkdir -p "$STATE" "$DATA" "$LOGS"
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The host engine's FORWARD policy is DROP and bridged frames pass iptables (br_netfilter): let our bridge talk.
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  for n in "${NODES[@]}"; do
    local ns="dsvmsw-n$n"
    ip netns add "$ns"
    ip link add "dsvmsw-v$n" type veth peer name eth0 netns "$ns"
    ip link set "dsvmsw-v$n" master "$BRIDGE" up
    ip -n "$ns" addr add "$NET.1$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done

  local cfg="$STATE/registry"
  mkdir -p "$cfg" "$DATA/registry"
  for which in lo net; do
    local addr="127.0.0.1:5000"
    [ "$which" = net ] && addr="$NET.1:5000"
    cat >"$cfg/$which.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $DATA/registry }
  delete: { enabled: true }
http: { addr: "$addr" }
EOF
    setsid docker-registry serve "$cfg/$which.yml" >"$LOGS/registry-$which.log" 2>&1 </dev/null &
    echo $! >"$STATE/registry-$which.pid"
  done

  for n in "${NODES[@]}"; do : >"$LOGS/dockerd-n$n.log"; start_engine "$n"; done
  for n in "${NODES[@]}"; do wait_engine "$n"; done
  wait_for 20 "registry" curl -sf "http://127.0.0.1:5000/v2/"

  dk 1 swarm init --advertise-addr "$NET.11" --default-addr-pool 10.213.0.0/16 >/dev/null
  local token
  token=$(dk 1 swarm join-token -q worker)
  for n in 2 3; do
    dk "$n" swarm join --token "$token" --advertise-addr "$NET.1$n" "$NET.11:2377" >/dev/null
  done
  wait_for 60 "3 ready nodes" sh -c "[ \$(docker -H $(sock 1) node ls --format '{{.Status}}' | grep -c Ready) -eq 3 ]"
  # Each node's host rules, as an operator installs them (docs/swarm.md): workspaces reach neither their node nor
  # the lab's /24 (other nodes, this machine: the hub's, the registry), published ports only from 10.211.0.1.
  # (docker_gwbridge need not exist yet: the rules name the interface.)
  for n in "${NODES[@]}"; do
    nsenter --net="/run/netns/dsvmsw-n$n" "$(dirname "$0")/../../scripts/swarm-node-rules.sh" --protect "$NET.0/24" --hub "$NET.1" 2>/dev/null
  done
  log "swarm up: managers $NET.11, workers $NET.12 $NET.13, registry $NET.1:5000 (push via 127.0.0.1:5000)"
}

reuse() {
  if curl -sf -m 2 "http://127.0.0.1:5000/v2/" >/dev/null 2>&1 \
    && [ "$(dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready)" = 3 ]; then
    dk 1 service ls -q | xargs -r docker -H "$(sock 1)" service rm >/dev/null
    dk 1 config ls -q | xargs -r docker -H "$(sock 1)" config rm >/dev/null
    for n in "${NODES[@]}"; do
      for _ in $(seq 1 150); do [ -z "$(dk "$n" ps -q)" ] && break; sleep 0.2; done
      dk "$n" volume prune -f >/dev/null
    done
    for n in "${NODES[@]}"; do dk 1 node update --availability active "dsvmsw-n$n" >/dev/null; done
    log "reusing the running lab"
  else
    up
  fi
}

case "${1:-}" in
  up) up ;;
  reuse) reuse ;;
  down) down ;;
  restart) [[ "${2:-}" =~ ^[123]$ ]] || { echo "usage: $0 restart 1|2|3" >&2; exit 2; }; restart "$2" ;;
  *) echo "usage: $0 up|down|reuse|restart N" >&2; exit 2 ;;
esac
