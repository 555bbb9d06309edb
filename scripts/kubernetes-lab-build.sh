#!/usr/bin/env bash
# Builds the Kubernetes binaries for the test lab cluster from Debian's own `kubernetes` source package
# (1.20.2, full source with vendor/) with Debian's golang-go, once per machine: the result is cached outside the
# checkout, keyed by the source version, in /var/cache/opendsvm/kubernetes/<version>/bin. Run again, it only prints
# that directory. Needs root (apt). Prints the bin directory on stdout.
#
# Two constants are patched before `make`, because the Docker engine on such machines (and this one) refuses a
# negative oom_score_adj: dockershim's sandbox value (-998) and the guaranteed-QoS value (-997) become 0.
# The pod sandbox ("pause") image is compiled from the source's own build/pause/linux/pause.c (no registry).
set -euo pipefail

log() { printf '[kubernetes-lab-build] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "kubernetes-lab-build: run as root" >&2; exit 1; }

cache_root="${DSVM_KUBERNETES_CACHE:-/var/cache/opendsvm/kubernetes}"
targets=(cmd/kubectl cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy)

# deb-src for the same mirror and suite as the machine's deb entries.
if ! apt-cache showsrc kubernetes >/dev/null 2>&1 || [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
  suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  uri="$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')"
  uri="${uri:-$(grep -hoE '^deb +[^ ]+' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')}"
  log "adding a deb-src entry for $uri $suite"
  cat >/etc/apt/sources.list.d/opendsvm-src.sources <<EOF
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -q >/dev/null
fi

version="$(apt-cache showsrc kubernetes | awk '/^Version:/ {print $2; exit}')"
[ -n "$version" ] || { echo "kubernetes-lab-build: Debian's mirror has no kubernetes source package" >&2; exit 1; }
out="$cache_root/$version"
if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/kubelet" ] && [ -x "$out/bin/kube-proxy" ] && [ -f "$out/bin/pause" ]; then
  echo "$out/bin"
  exit 0
fi

need=()
for p in golang-go build-essential rsync jq dpkg-dev etcd-server; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

work="$cache_root/src-$version"
if [ ! -f "$work/.unpacked" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  log "fetching the kubernetes $version source package"
  (cd "$work" && apt-get source -q kubernetes >/dev/null)
  touch "$work/.unpacked"
fi
src="$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)"
[ -d "$src" ] || { echo "kubernetes-lab-build: no source tree under $work" >&2; exit 1; }

# The two constants (see the header).
sed -i 's/defaultSandboxOOMAdj int = -998/defaultSandboxOOMAdj int = 0/' "$src/pkg/kubelet/dockershim/docker_sandbox.go"
sed -i 's/guaranteedOOMScoreAdj int = -997/guaranteedOOMScoreAdj int = 0/' "$src/pkg/kubelet/qos/policy.go"
grep -q 'defaultSandboxOOMAdj int = 0' "$src/pkg/kubelet/dockershim/docker_sandbox.go"
grep -q 'guaranteedOOMScoreAdj int = 0' "$src/pkg/kubelet/qos/policy.go"

mkdir -p "$out/bin"
for t in "${targets[@]}"; do
  name="$(basename "$t")"
  [ -x "$out/bin/$name" ] && continue
  log "building $name (this takes minutes)"
  (cd "$src" && GOFLAGS=-mod=vendor GOCACHE="$cache_root/go-cache" make WHAT="$t" >"$out/build-$name.log" 2>&1) ||
    { echo "kubernetes-lab-build: building $name failed; see $out/build-$name.log" >&2; tail -n 20 "$out/build-$name.log" >&2; exit 1; }
  cp "$src/_output/local/bin/linux/amd64/$name" "$out/bin/$name.tmp" && mv "$out/bin/$name.tmp" "$out/bin/$name"
done
if [ ! -f "$out/bin/pause" ]; then
  gcc -Os -static -o "$out/bin/pause.tmp" "$src/build/pause/linux/pause.c" && mv "$out/bin/pause.tmp" "$out/bin/pause"
fi
echo "$out/bin"
