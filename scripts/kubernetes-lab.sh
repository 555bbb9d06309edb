#!/usr/bin/env bash
# A single-node Kubernetes 1.20 cluster for the tests, from the binaries scripts/kubernetes-lab-build.sh builds:
# etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet that runs pods
# on the local Docker engine through dockershim, and kube-proxy (iptables mode: Service addresses work from the host
# and from pods). Pods get the engine's default bridge (docker0; no CNI plugin, so NetworkPolicy is not enforced).
# Everything listens on 127.0.0.1, except one forwarder (socat) of the API server's port on the bridge's gateway
# address (172.17.0.1), which the `kubernetes` Service's endpoint names, so that pods (a hub in the cluster) reach
# the API; only the host and its containers reach that address (a lab chain drops it from any other interface).
# Storage: a default StorageClass "dsvm-lab-local" (no provisioner, WaitForFirstConsumer) and static local
# PersistentVolumes under the lab directory, so claims bind when their pod is scheduled, as on a real cluster with
# local disks.
#
#   scripts/kubernetes-lab.sh start   start the cluster (again: only checks that it answers); prints the env lines
#   scripts/kubernetes-lab.sh env     prints `export KUBECONFIG=...` and `export DSVM_K8S_LAB_BIN=...`
#   scripts/kubernetes-lab.sh stop    kills the lab's processes, removes the containers its kubelet left, removes the
#                                     KUBE-* iptables chains (kube-proxy --cleanup, then the kubelet's), wipes state
#
# Needs root. Settings: DSVM_K8S_LAB_DIR (state, default /var/tmp/opendsvm-k8s-lab), DSVM_K8S_LAB_PORT (API server,
# default 16443), DSVM_K8S_LAB_VOLUMES (static volumes, default 64: a deleted claim leaves its volume Released, as
# with any Retain volume, so each run of the cluster tests uses up about 6; restart the lab to get them back).
set -euo pipefail

log() { printf '[kubernetes-lab] %s\n' "$*" >&2; }
die() { printf 'kubernetes-lab: %s\n' "$*" >&2; exit 1; }

lab="${DSVM_K8S_LAB_DIR:-/var/tmp/opendsvm-k8s-lab}"
port="${DSVM_K8S_LAB_PORT:-16443}"
volumes="${DSVM_K8S_LAB_VOLUMES:-64}"
etcd_port=23790
etcd_peer=23800
# The node is named localhost: the kubelet refuses a loopback --node-ip, so the API server reaches it (logs, exec)
# by its Hostname address, which then resolves to 127.0.0.1.
node=localhost
pause_image=opendsvm/k8s-lab-pause:1
kubeconfig="$lab/admin.kubeconfig"
here="$(cd "$(dirname "$0")" && pwd)"

bin_dir() {
  if [ -n "${DSVM_K8S_LAB_BIN:-}" ]; then echo "$DSVM_K8S_LAB_BIN"; else "$here/kubernetes-lab-build.sh"; fi
}

print_env() {
  echo "export KUBECONFIG=$kubeconfig"
  echo "export DSVM_K8S_LAB_BIN=$1"
}

# The engine's default bridge gateway (docker0's address): the one non-loopback address the lab serves on. As the
# engine's IPAM configuration names it, or (a fresh engine lists only the subnet) the bridge interface's own address.
gateway() {
  local gw ifname
  IFS='|' read -r gw ifname < <(docker network inspect bridge \
    --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}|{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)
  [ -n "$gw" ] || gw="$(ip -4 -o addr show "${ifname:-docker0}" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')"
  echo "$gw"
}

answers() { [ -f "$kubeconfig" ] && "$1/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; }

node_ready() {
  [ "$("$1/kubectl" --kubeconfig "$kubeconfig" get node "$node" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]
}

dns_ready() {
  kill -0 "$(cat "$lab/run/dns.pid")" 2>/dev/null && grep -q "read $lab/dns/services" "$lab/log/dns.log" 2>/dev/null
}
kube_proxy_ready() { iptables -w -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https cluster IP'; }

wait_for() { # seconds, description, command...
  local seconds="$1" what="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do "$@" && return 0; sleep 0.2; done
  die "$what did not come up within ${seconds}s (logs: $lab/log)"
}

stop_lab() {
  for name in dns-sync dns kube-proxy kubelet kube-scheduler kube-controller-manager api-forward kube-apiserver etcd; do
    local pidfile="$lab/run/$name.pid"
    [ -f "$pidfile" ] || continue
    local pid
    pid="$(cat "$pidfile")"
    # Only a process this lab started (its command line names the lab directory).
    if [ -n "$pid" ] && grep -qF "$lab" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  # The pods' containers and sandboxes the kubelet left (dockershim labels each with its pod's UID).
  if docker info >/dev/null 2>&1; then
    local left
    left="$(docker ps -aq --filter label=io.kubernetes.pod.uid 2>/dev/null || true)"
    [ -z "$left" ] || docker rm -f $left >/dev/null 2>&1 || true
  fi
  iptables_cleanup
  # kube-proxy set net.ipv4.conf.all.route_localnet=1 (Kubernetes 1.20 does, for NodePorts on localhost): back to
  # what it was before the lab started.
  if [ -f "$lab/run/route_localnet" ]; then
    sysctl -qw net.ipv4.conf.all.route_localnet="$(cat "$lab/run/route_localnet")" || true
  fi
  # The kubelet's mounts (secrets, memory emptyDirs, local volumes), innermost first, before the state is removed.
  if [ -d "$lab" ]; then
    awk -v d="$lab/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$lab"
  fi
}

# Removes every iptables rule and chain the lab made: kube-proxy's own cleanup (its binary, when known), then any
# KUBE-* chain left in filter, nat and mangle (the kubelet's KUBE-FIREWALL, KUBE-MARK-*, canaries) for IPv4 and
# IPv6, and the lab's own DSVM-K8S-LAB input chain. Only chains named KUBE-* or DSVM-K8S-LAB and the rules that
# jump to them are touched.
iptables_cleanup() {
  local bin
  bin="$(cat "$lab/run/bin" 2>/dev/null || true)"
  [ -n "$bin" ] && [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  local ipt table chain rule
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      # Rules of other chains that jump to a lab chain, then the lab chains themselves.
      "$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A .* -j (KUBE-[A-Z0-9-]+|DSVM-K8S-LAB)( |$)' | grep -vE '^-A (KUBE-[A-Z0-9-]+|DSVM-K8S-LAB) ' |
        while read -r rule; do eval "$ipt -w -t $table -D ${rule#-A }" 2>/dev/null || true; done || true
      for chain in $("$ipt-save" -t "$table" 2>/dev/null | grep -oE '^:(KUBE-[A-Z0-9-]+|DSVM-K8S-LAB)' | tr -d :); do
        "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt-save" -t "$table" 2>/dev/null | grep -oE '^:(KUBE-[A-Z0-9-]+|DSVM-K8S-LAB)' | tr -d :); do
        "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

certs() { # gateway
  local pki="$lab/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    # Key usages and key identifiers as a strict verifier (Python 3.13's ssl) wants them in a CA and its leaves.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=opendsvm-lab-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" 2>/dev/null
    cat >apiserver.ext <<EOF
subjectAltName=IP:127.0.0.1,IP:$1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # One client identity (system:masters) for the lab's own components and the tests.
    echo "extendedKeyUsage=clientAuth" >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=opendsvm-lab-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: opendsvm-lab
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: opendsvm-lab-admin
  user:
    client-certificate-data: $(base64 -w0 "$pki/admin.crt")
    client-key-data: $(base64 -w0 "$pki/admin.key")
contexts:
- name: opendsvm-lab
  context: {cluster: opendsvm-lab, user: opendsvm-lab-admin}
current-context: opendsvm-lab
EOF
  chmod 600 "$kubeconfig"
}

launch() { # name, binary, args...
  local name="$1"
  shift
  # The daemon gets no inherited descriptor beyond 0-2: started from a command under `flock LOCK ...` it would
  # otherwise hold that lock for as long as the lab runs.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    exec setsid "$@" >"$lab/log/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$lab/run/$name.pid"
}

pause_image() {
  docker image inspect "$pause_image" >/dev/null 2>&1 && return 0
  local tmp
  tmp="$(mktemp -d)"
  cp "$1/pause" "$tmp/pause"
  chmod 755 "$tmp/pause"
  tar -C "$tmp" -cf "$tmp/pause.tar" pause
  docker import --change 'ENTRYPOINT ["/pause"]' "$tmp/pause.tar" "$pause_image" >/dev/null
  rm -rf "$tmp"
}

storage() { # bin
  local kubectl=("$1/kubectl" --kubeconfig "$kubeconfig")
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: dsvm-lab-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    for i in $(seq 1 "$volumes"); do
      mkdir -p "$lab/volumes/pv$i"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: dsvm-lab-pv$i
  labels: {io.opendsvm.lab: "true"}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: dsvm-lab-local
  local: {path: $lab/volumes/pv$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$node]}
EOF
    done
  } | "${kubectl[@]}" apply -f - >/dev/null
}

start_lab() {
  local bin="$1"
  command -v etcd >/dev/null || die "etcd not found: apt-get install etcd-server (scripts/host-setup.sh --tests does)"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (scripts/host-setup.sh starts it)"
  if answers "$bin" && node_ready "$bin"; then
    log "already running at https://127.0.0.1:$port"
    return 0
  fi
  command -v socat >/dev/null || die "socat not found: apt-get install socat (scripts/host-setup.sh --tests does)"
  stop_lab
  local t0=$SECONDS gw
  gw="$(gateway)"
  [[ "$gw" =~ ^(10|172|192)\.[0-9.]+$ ]] || die "the engine's default bridge has no private gateway address (got '$gw')"
  mkdir -p "$lab/log" "$lab/run" "$lab/etcd" "$lab/kubelet" "$lab/volumes"
  echo "$bin" >"$lab/run/bin"
  sysctl -n net.ipv4.conf.all.route_localnet >"$lab/run/route_localnet"
  certs "$gw"
  pause_image "$bin"
  local pki="$lab/pki"

  launch etcd etcd --name lab --data-dir "$lab/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "lab=http://127.0.0.1:$etcd_peer" --listen-metrics-urls "http://127.0.0.1:23810"

  launch kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address "$gw" --secure-port "$port" --insecure-port 0 \
    --service-cluster-ip-range 10.96.0.0/24 --allow-privileged=true \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --authorization-mode Node,RBAC \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --kubelet-preferred-address-types Hostname --profiling=false --cert-dir "$pki"
  wait_for 60 "kube-apiserver" answers "$bin"
  # Pods reach the API at the `kubernetes` Service (10.96.0.1:443), whose endpoint the API server writes as
  # gateway:port (--advertise-address); this forwarder listens on exactly that address. The lab chain keeps the
  # gateway address to the host itself (lo) and its containers (docker0).
  iptables -w -N DSVM-K8S-LAB
  iptables -w -A DSVM-K8S-LAB -i lo -j RETURN
  iptables -w -A DSVM-K8S-LAB -i docker0 -j RETURN
  iptables -w -A DSVM-K8S-LAB -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  iptables -w -A DSVM-K8S-LAB -j DROP
  iptables -w -I INPUT -d "$gw" -j DSVM-K8S-LAB
  launch api-forward socat -L "$lab/run/api-forward.lock" "TCP-LISTEN:$port,bind=$gw,reuseaddr,fork" "TCP:127.0.0.1:$port"

  launch kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --port 0 --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --cert-dir "$lab/run/kcm"
  launch kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --port 0 --leader-elect=false --cert-dir "$lab/run/sched"

  # Cluster DNS (Debian has no CoreDNS): dnsmasq on the gateway answers SERVICE.NAMESPACE.svc.cluster.local with the
  # Service's cluster IP from a hosts file that dns-sync rewrites from the API server every second (dnsmasq rereads a
  # changed file in --hostsdir by itself), and nothing outside cluster.local (no upstream: the lab is offline).
  mkdir -p "$lab/dns"
  launch dns-sync "$(readlink -f "$0")" dns-sync "$lab" "$bin"
  launch dns dnsmasq --keep-in-foreground --log-facility=- --user=nobody --pid-file= --conf-file=/dev/null \
    --listen-address "$gw" --bind-interfaces --port 53 --no-resolv --no-hosts --local=/cluster.local/ --log-queries \
    --hostsdir "$lab/dns"

  # dockershim on the local engine: cgroupfs, no QoS cgroups, no CNI; image and eviction thresholds set so this
  # kubelet never removes images or evicts pods of a busy shared test machine. Pods ask the lab's DNS.
  launch kubelet "$bin/kubelet" --kubeconfig "$kubeconfig" --hostname-override "$node" \
    --cluster-dns "$gw" --cluster-domain cluster.local \
    --address 127.0.0.1 --port 10250 --read-only-port 0 --healthz-bind-address 127.0.0.1 --healthz-port 10248 \
    --root-dir "$lab/kubelet" --cert-dir "$lab/kubelet/pki" \
    --anonymous-auth=false --client-ca-file "$pki/ca.crt" --authorization-mode Webhook \
    --container-runtime docker --docker-endpoint unix:///var/run/docker.sock --pod-infra-container-image "$pause_image" \
    --cgroup-driver cgroupfs --cgroups-per-qos=false --enforce-node-allocatable= --fail-swap-on=false --network-plugin= \
    --image-gc-high-threshold 100 --image-gc-low-threshold 99 \
    --eviction-hard 'memory.available<50Mi,nodefs.available<1%,imagefs.available<1%' \
    --serialize-image-pulls=false --max-pods 60
  # Services: iptables rules only (no NodePort listens except on loopback, no conntrack sysctls changed, no
  # --cluster-cidr: no masquerading of other bridges' traffic into the pods), health and metrics on loopback.
  launch kube-proxy "$bin/kube-proxy" --kubeconfig "$kubeconfig" --hostname-override "$node" --proxy-mode iptables \
    --bind-address 127.0.0.1 --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249 \
    --nodeport-addresses 127.0.0.1/32 --conntrack-max-per-core 0 \
    --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0
  wait_for 90 "node $node" node_ready "$bin"
  wait_for 60 "kube-proxy" kube_proxy_ready
  # dnsmasq refuses to start when the gateway's port 53 is taken (another DNS server on all addresses): say so here,
  # not as a hub that cannot resolve its workspaces.
  wait_for 30 "the cluster DNS (dnsmasq on $gw:53, log/dns.log)" dns_ready
  storage "$bin"
  log "cluster up in $((SECONDS - t0))s at https://127.0.0.1:$port (state in $lab)"
}

# The hosts file of the lab's DNS: every Service with a cluster IP, rewritten when it changes (runs until stopped).
dns_sync() { # lab, bin
  local dir="$1/dns" bin="$2" tmp="$1/run/services.tmp"
  while :; do
    if "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s get services --all-namespaces \
      -o jsonpath='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.cluster.local{"\n"}{end}' \
      2>/dev/null | grep -v '^None ' >"$tmp" && ! cmp -s "$tmp" "$dir/services"; then
      mv "$tmp" "$dir/services"
    fi
    sleep 1
  done
}

case "${1:-}" in
  dns-sync)
    dns_sync "$2" "$3"
    ;;
  start)
    [ "$(id -u)" -eq 0 ] || die "run as root"
    bin="$(bin_dir)"
    start_lab "$bin"
    print_env "$bin"
    ;;
  env)
    print_env "$(bin_dir)"
    ;;
  stop)
    [ "$(id -u)" -eq 0 ] || die "run as root"
    stop_lab
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
