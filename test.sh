#!/usr/bin/env bash
# Runs the whole test suite: prepares the host (Docker engine, debootstrap, PostgreSQL, Chromium), then
# unit, Docker integration and end-to-end tests. Prints one closing line: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")"
./scripts/host-setup.sh --tests || exit 1

results=.dsvm/test-results
rm -rf "$results"
mkdir -p "$results"
# One DSVM_HOME for the whole run: the base image, locks and builds are reused across test classes.
export DSVM_TEST_HOME="${DSVM_TEST_HOME:-/var/tmp/opendsvm-tests}"
# Under this script a missing engine fails the Docker tests instead of skipping them.
export DSVM_REQUIRE_DOCKER=1

# A throwaway PostgreSQL cluster (Debian's package) for the PostgreSQL store tests: 127.0.0.1:55432, trust auth,
# database dsvm_test; wiped at start and stopped when this script exits.
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && pg_bin="$d"; done
if [ -z "$pg_bin" ] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
  pg_bin="$(dirname "$(command -v pg_ctl)")"
fi
pg_data=/var/tmp/opendsvm-pg
pg_sock=/tmp/opendsvm-pg-sock
pg_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_postgres() { [ -n "$pg_bin" ] && [ -f "$pg_data/postmaster.pid" ] && pg_as "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1; }
if [ -n "$pg_bin" ]; then
  stop_postgres
  rm -rf "$pg_data" "$pg_sock"
  mkdir -p "$pg_data" "$pg_sock"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pg_data" "$pg_sock"
  if pg_as "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >"$results/postgres-initdb.log" 2>&1 &&
     pg_as "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 60 \
       -o "-c listen_addresses=127.0.0.1 -c port=55432 -c unix_socket_directories=$pg_sock -c fsync=off" start >/dev/null &&
     pg_as "$pg_bin/psql" -h 127.0.0.1 -p 55432 -U postgres -qc "CREATE DATABASE dsvm_test" >/dev/null; then
    trap 'stop_postgres || true' EXIT
    export DSVM_TEST_POSTGRES="Host=127.0.0.1;Port=55432;Username=postgres;Database=dsvm_test"
    # Under this script the PostgreSQL tests fail instead of skipping when the cluster is unreachable.
    export DSVM_REQUIRE_POSTGRES=1
  else
    echo "test.sh: could not start PostgreSQL (see $results/postgres-initdb.log, $pg_data/server.log); its tests will be skipped" >&2
    stop_postgres
  fi
fi

# The Kubernetes lab cluster (scripts/kubernetes-lab.sh: etcd, control plane, a kubelet on the local engine and
# kube-proxy on 127.0.0.1; the API server also forwarded on the docker0 gateway for pods) for the cluster tests and the
# end-to-end test of the hub image deployed on it (HubOnClusterTests, which uses the lab's kubectl). Its binaries are built once per machine (scripts/kubernetes-lab-build.sh, ~24 min
# cold; a cache hit is instant). A lab left by a crashed run is stopped and wiped first; this one is stopped at exit,
# its logs kept in $results/kubernetes-lab. Started here, never under flock (its daemons would hold the lock).
stop_kubernetes_lab() {
  [ -d /var/tmp/opendsvm-k8s-lab/log ] && cp -r /var/tmp/opendsvm-k8s-lab/log "$results/kubernetes-lab" 2>/dev/null
  ./scripts/kubernetes-lab.sh stop >/dev/null 2>&1
}
trap 'stop_postgres || true; stop_kubernetes_lab || true' EXIT
# Under this script the cluster tests fail instead of skipping when the lab cannot start.
export DSVM_REQUIRE_KUBERNETES=1
./scripts/kubernetes-lab.sh stop >/dev/null 2>&1 || true
if k8s_lab_bin="$(./scripts/kubernetes-lab-build.sh 2>"$results/kubernetes-lab-build.log")" &&
   k8s_lab_env="$(DSVM_K8S_LAB_BIN="$k8s_lab_bin" ./scripts/kubernetes-lab.sh start 2>"$results/kubernetes-lab-start.log")"; then
  eval "$k8s_lab_env"
else
  echo "test.sh: the Kubernetes lab did not start (see $results/kubernetes-lab-*.log); its tests will fail" >&2
fi

dotnet build OpenDSVM.slnx -c Release -nologo -v quiet || exit 1
# -m:1: test projects run one after another (the Docker tests share the engine and the test home).
dotnet test OpenDSVM.slnx -c Release --no-build -nologo -m:1 \
  --logger "trx" --results-directory "$results" "$@" 2>&1 | tee "$results/console.log"
status=${PIPESTATUS[0]}

# Sum the per-project counters of the TRX files into one closing line.
read -r passed failed skipped < <(
  cat "$results"/*.trx 2>/dev/null | grep -o '<Counters [^>]*>' |
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); gsub(/[^0-9]/, "", kv[2]); c[kv[1]] += kv[2] } }
       END { printf "%d %d %d\n", c["passed"], c["failed"] + c["error"] + c["timeout"], c["notExecuted"] }')
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit "$status"
