#!/usr/bin/env bash
# Host rules for a Docker Swarm node that runs OpenDSVM workspaces (docs/swarm.md "Host rules on the nodes"):
# run as root on every node, after dockerd is up and the node has joined the swarm; again after a reboot.
#
#   swarm-node-rules.sh --protect CIDR [--protect CIDR ...] [--hub ADDRESS ...]
#
# A workspace service reaches the outside through its node's docker_gwbridge. These rules keep it from opening a
# connection to
#   - the node itself (any of its addresses: the swarm ports 2377/7946, dockerd, the published ports of its
#     neighbours, ssh...): INPUT from docker_gwbridge, answers to connections made to it excepted;
#   - any address in the --protect ranges (the swarm's private network: the other nodes, their published ports,
#     the hub's machine, a registry) and link-local addresses (cloud metadata at 169.254.169.254);
# and, with --hub, let only the hub's addresses open connections to the published ports (nothing else on the
# private network reaches a Jupyter directly). A hub that runs as a swarm service on a manager's host network
# (deploy/swarm/hub-stack.yml) connects from that manager's address: give it with --hub. The internet stays
# reachable (network: internet sizes).
# Every container on docker_gwbridge is covered: dedicate the swarm to workspaces.
#
# Idempotent: the chains are replaced atomically and the jumps added only when missing. dockerd keeps
# DOCKER-USER and INPUT across its restarts. IPv4 only (like the networks the backend creates).
set -euo pipefail

protect=()
hubs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --protect) protect+=("${2:?--protect needs a CIDR, e.g. 10.0.5.0/24}"); shift 2 ;;
    --hub) hubs+=("${2:?--hub needs the address of the hub, as the nodes see it}"); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "swarm-node-rules: unknown argument '$1' (use --protect CIDR, --hub ADDRESS)" >&2; exit 2 ;;
  esac
done
if [ ${#protect[@]} -eq 0 ]; then
  echo "swarm-node-rules: give the swarm's private network with --protect CIDR (e.g. --protect 10.0.5.0/24)" >&2
  exit 2
fi
cidr='^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$'
for c in "${protect[@]}" "${hubs[@]}"; do
  if ! [[ "$c" =~ $cidr ]]; then
    echo "swarm-node-rules: '$c' is not an IPv4 address or CIDR" >&2
    exit 2
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "swarm-node-rules: run as root (it installs iptables rules)" >&2
  exit 1
fi
if ! iptables -w -n -L DOCKER-USER >/dev/null 2>&1; then
  echo "swarm-node-rules: no DOCKER-USER chain: start dockerd (with its iptables rules) first" >&2
  exit 1
fi

{
  echo '*filter'
  echo ':DSVM-SWARM-INPUT - [0:0]'
  echo ':DSVM-SWARM-FORWARD - [0:0]'
  echo ':DSVM-SWARM-PUBLISHED - [0:0]'
  echo '-A DSVM-SWARM-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'
  echo '-A DSVM-SWARM-INPUT -j REJECT --reject-with icmp-admin-prohibited'
  echo '-A DSVM-SWARM-FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN'
  for c in "${protect[@]}" 169.254.0.0/16; do
    echo "-A DSVM-SWARM-FORWARD -d $c -j REJECT --reject-with icmp-admin-prohibited"
  done
  if [ ${#hubs[@]} -gt 0 ]; then
    for h in "${hubs[@]}"; do echo "-A DSVM-SWARM-PUBLISHED -s $h -j RETURN"; done
    echo '-A DSVM-SWARM-PUBLISHED -j REJECT --reject-with icmp-admin-prohibited'
  fi
  echo 'COMMIT'
} | iptables-restore -w --noflush

jump() { iptables -w -C "$@" 2>/dev/null || iptables -w -I "$1" 1 "${@:2}"; }
jump INPUT -i docker_gwbridge -j DSVM-SWARM-INPUT
jump DOCKER-USER -i docker_gwbridge -j DSVM-SWARM-FORWARD
if [ ${#hubs[@]} -gt 0 ]; then
  jump DOCKER-USER ! -i docker_gwbridge -o docker_gwbridge -m conntrack --ctstate NEW -j DSVM-SWARM-PUBLISHED
else
  iptables -w -D DOCKER-USER ! -i docker_gwbridge -o docker_gwbridge -m conntrack --ctstate NEW -j DSVM-SWARM-PUBLISHED 2>/dev/null || true
fi
echo "[swarm-node-rules] installed: workspaces reach neither this node nor ${protect[*]}${hubs[*]:+; published ports only from ${hubs[*]}}" >&2
