#!/usr/bin/env bash
# Makes a fresh Debian machine (root) ready for OpenDSVM: installs what is missing from Debian's packages
# (Docker engine, containerd, runc, debootstrap; with --tests, what the tests need too) and starts the engine if it is
# not running. Safe to run again: it only does what is missing.
set -euo pipefail

want_tests=0
[ "${1:-}" = "--tests" ] && want_tests=1

log() { printf '[host-setup] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "host-setup: run as root (it installs packages and starts the Docker engine)" >&2
  exit 1
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "host-setup: the .NET 10 SDK is required (dotnet not found on PATH)" >&2
  exit 1
fi

packages=(docker.io containerd runc debootstrap tini iproute2 procps curl ca-certificates)
if [ "$want_tests" -eq 1 ]; then
  packages+=(git chromium postgresql docker-registry etcd-server socat dnsmasq-base)
  # VM disks (dsvm env export) and the qemu backend: the tests export the minimal environment and boot it.
  packages+=(qemu-system-x86 qemu-utils syslinux syslinux-common mtools dosfstools e2fsprogs fdisk)
fi
# Not installed by default (the Docker backend needs none of them): `dsvm env export` and `--backend qemu` name
# the missing package when one is needed; `scripts/host-setup.sh --vm` installs them without the test tools.
if [ "${1:-}" = "--vm" ]; then
  packages+=(qemu-system-x86 qemu-utils syslinux syslinux-common mtools dosfstools e2fsprogs fdisk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
  mkdir -p /var/log/opendsvm
  # The main engine's own processes, not the Swarm lab's (those dockerds and containerds run with arguments and pid
  # files of their own): containerd as started below, dockerd by its default pid file.
  if ! pgrep -f '^(/usr/bin/|/usr/sbin/)?containerd( --config /etc/containerd/config.toml)?$' >/dev/null; then
    log "starting containerd"
    # In a session of its own: the engine outlives the shell, terminal or job (and its process group) that started it.
    setsid -f containerd >>/var/log/opendsvm/containerd.log 2>&1 </dev/null
    for _ in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
  fi
  if ! { [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }; then
    log "starting dockerd"
    setsid -f dockerd --containerd=/run/containerd/containerd.sock >>/var/log/opendsvm/dockerd.log 2>&1 </dev/null
  fi
  for _ in $(seq 1 150); do engine_up && break; sleep 0.2; done
  if ! engine_up; then
    echo "host-setup: the Docker engine did not start; see /var/log/opendsvm/dockerd.log" >&2
    tail -n 20 /var/log/opendsvm/dockerd.log >&2 || true
    exit 1
  fi
fi
log "docker engine $(docker version --format '{{.Server.Version}}') is running"

# Workspace network isolation (docs/security-network.md): workspaces on the dsvm-ws* bridges reach neither the
# host (any address, the hub included) nor each other nor link-local addresses (cloud metadata). Idempotent: the
# chains are replaced atomically, the jumps added only when missing. dockerd keeps INPUT and DOCKER-USER across
# restarts; run this again after a reboot. Kept equal to HostFirewall in src/Dsvm.Docker/DockerNetworks.cs by a test.
iptables -w -N DOCKER-USER 2>/dev/null || true
iptables-restore -w --noflush <<'RULES'
*filter
:DSVM-INPUT - [0:0]
:DSVM-FORWARD - [0:0]
-A DSVM-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A DSVM-INPUT -j REJECT --reject-with icmp-admin-prohibited
-A DSVM-FORWARD -o dsvm-ws+ -j REJECT --reject-with icmp-admin-prohibited
-A DSVM-FORWARD -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited
COMMIT
RULES
iptables -w -C INPUT -i dsvm-ws+ -j DSVM-INPUT 2>/dev/null || iptables -w -I INPUT 1 -i dsvm-ws+ -j DSVM-INPUT
iptables -w -C DOCKER-USER -i dsvm-ws+ -j DSVM-FORWARD 2>/dev/null || iptables -w -I DOCKER-USER 1 -i dsvm-ws+ -j DSVM-FORWARD
log "workspace network rules installed (DSVM-INPUT, DSVM-FORWARD)"

# The Kubernetes lab's binaries are not built here yet: no test runs against the lab cluster so far, and a cold
# build takes ~25 minutes. Build them with scripts/kubernetes-lab-build.sh (cached per source version).
