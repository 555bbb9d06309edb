#!/usr/bin/env bash
# One standalone Docker engine that the engine-fault tests stop and start while a workspace uses it (test
# infrastructure only: the backend knows nothing of namespaces).
#
#   fault-engine.sh up [IMAGE...]  tear down leftovers, then netns + engine; copy IMAGEs in from the host engine
#   fault-engine.sh stop           SIGTERM the engine (as `systemctl stop docker`: it stops its containers first)
#   fault-engine.sh kill           SIGKILL the engine (its containers run on, unmanaged, until it is back)
#   fault-engine.sh freeze         SIGSTOP the engine: it hangs (the kernel still accepts connections on its socket)
#   fault-engine.sh thaw           SIGCONT a frozen engine
#   fault-engine.sh start          start the engine again on the same data (or thaw it, when it runs frozen)
#   fault-engine.sh down           remove everything (containers, engine, namespace, veth, data)
#
# Layout: network namespace dsvm-fault with veth eth0 at 10.215.0.2/24, the host end dsvmf0 at 10.215.0.1/24 (no
# default route inside: the engine and its containers reach nothing but this /24); one dockerd in it (on the host's
# containerd, in containerd namespace dsvm-fault), engine at unix:///run/dsvm-fault/docker.sock, data in a tmpfs
# at /var/lib/dsvm-fault (an image's files deleted from disk took minutes here; umount is instant), workspace networks from 10.215.128.0/17 inside the namespace. Workspaces publish Jupyter on
# 10.215.0.2 (the Docker backend's bind-address), which the host reaches through the veth. Daemons are started
# with every inherited descriptor above 2 closed, so a test run under `flock` never hands its lock to dockerd.
set -euo pipefail

NS=dsvm-fault
HOST_IF=dsvmf0
NET=10.215.0
STATE=/run/dsvm-fault
DATA=/var/lib/dsvm-fault
LOGS=${DSVM_FAULT_LOGS:-/var/log/dsvm-fault}
SOCK="unix://$STATE/docker.sock"

log() { printf '[fault-engine] %s\n' "$*" >&2; }
dk() { docker -H "$SOCK" "$@"; }

wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out waiting for $what"
  return 1
}

pid_of() { cat "$STATE/dockerd.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

signal() { # signal seconds
  local pid
  pid=$(pid_of)
  [ -n "$pid" ] || return 0
  kill "-$1" "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true # a frozen engine gets the signal only once it runs
  for _ in $(seq 1 $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

start() {
  [ -e "/run/netns/$NS" ] || { log "no namespace $NS: run up first"; exit 1; }
  alive && { kill -CONT "$(pid_of)"; log "the engine already runs (thawed, if it was frozen)"; return 0; }
  mkdir -p "$STATE" "$DATA" "$LOGS"
  (
    # Whatever the caller holds open (a flock'd lock file above all) must not live on in the daemon.
    for fd in /proc/self/fd/*; do
      n=${fd##*/}
      if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
    done
    # nsenter (not `ip netns exec`, which remounts /sys and so hides the cgroup hierarchy from dockerd).
    exec setsid nsenter --net="/run/netns/$NS" \
      dockerd --data-root "$DATA" --exec-root "$STATE" --pidfile "$STATE/dockerd.pid" -H "$SOCK" \
      --containerd=/run/containerd/containerd.sock --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins" \
      --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$NS" \
      --bip 10.215.1.1/24 --default-address-pool base=10.215.128.0/17,size=24 \
      --no-new-privileges --userland-proxy=false >>"$LOGS/dockerd.log" 2>&1 </dev/null
  ) &
  wait_for 60 "the fault engine (see $LOGS/dockerd.log)" dk info || { tail -n 30 "$LOGS/dockerd.log" >&2; exit 1; }
}

down() {
  if alive; then
    dk ps -aq 2>/dev/null | xargs -r docker -H "$SOCK" rm -f >/dev/null 2>&1 || true
  fi
  signal TERM 30
  rm -f "$STATE/dockerd.pid"
  # Containers a killed engine left in containerd.
  for t in $(ctr -n "$NS" tasks ls -q 2>/dev/null || true); do ctr -n "$NS" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  sleep 0.5
  for t in $(ctr -n "$NS" tasks ls -q 2>/dev/null || true); do ctr -n "$NS" tasks rm -f "$t" >/dev/null 2>&1 || true; done
  for c in $(ctr -n "$NS" containers ls -q 2>/dev/null || true); do ctr -n "$NS" containers rm "$c" >/dev/null 2>&1 || true; done
  ctr namespaces rm "$NS" >/dev/null 2>&1 || true
  # Mounts left inside the data root (overlay layers, shm, netns files) would keep rm from working.
  { grep -E " ($DATA|$STATE)[/ ]" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  { ip netns pids "$NS" 2>/dev/null || true; } | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
  rmdir /sys/fs/cgroup/*/"$NS"/* /sys/fs/cgroup/*/"$NS" 2>/dev/null || true
  while mountpoint -q "$DATA" 2>/dev/null; do umount -l "$DATA" || break; done
  rm -rf "$STATE" "$DATA"
}

up() {
  down
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name eth0 netns "$NS"
  ip addr add "$NET.1/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip -n "$NS" addr add "$NET.2/24" dev eth0
  ip -n "$NS" link set eth0 up
  ip -n "$NS" link set lo up
  mkdir -p "$DATA"
  mount -t tmpfs -o "size=${DSVM_FAULT_DATA_SIZE:-4g},mode=0711" dsvm-fault "$DATA"
  start
  if [ "$#" -gt 0 ]; then
    docker save "$@" | dk load -q >/dev/null
  fi
  log "engine up at $SOCK, publishing on $NET.2"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  stop) signal TERM 60; alive && { log "the engine did not stop"; exit 1; }; log "engine stopped" ;;
  kill) signal KILL 10; log "engine killed" ;;
  freeze) alive || { log "the engine does not run"; exit 1; }; kill -STOP "$(pid_of)"; log "engine frozen" ;;
  thaw) alive && kill -CONT "$(pid_of)"; log "engine thawed" ;;
  start) start; log "engine back" ;;
  down) down ;;
  *) echo "usage: $0 up [IMAGE...]|stop|kill|freeze|thaw|start|down" >&2; exit 2 ;;
esac
