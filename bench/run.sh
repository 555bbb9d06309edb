#!/usr/bin/env bash
# Builds the benchmark (and the dsvm CLI, for its CLI row) in Release and runs it; every argument goes to the
# benchmark (see bench/run.sh --help). The build goes to .dsvm/bench-build (bin and obj both), so it never touches
# the bin/obj folders that a concurrent `dotnet build` or `dotnet test` of the solution is using.
# Build output goes to stderr: stdout holds only the tables, or the JSON with --output json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.dsvm/bench-build
extra=()
# --suite peers: configurable-http-proxy from npm (cached outside the checkout), JupyterHub 3.0, Jupyter Server and
# wrk from Debian; all of them are started by the benchmark on 127.0.0.1 only.
if [[ " $* " == *" --suite peers "* || " $* " == *" --suite=peers "* ]]; then
  chp_dir=${DSVM_BENCH_CHP_DIR:-/var/tmp/opendsvm-bench/chp}
  chp_version=${DSVM_BENCH_CHP_VERSION:-5.3.0}
  if [[ ! -x "$chp_dir/node_modules/.bin/configurable-http-proxy" ]] \
     || ! grep -q "\"version\": \"$chp_version\"" "$chp_dir/node_modules/configurable-http-proxy/package.json"; then
    mkdir -p "$chp_dir"
    npm install --prefix "$chp_dir" --no-audit --no-fund --no-save "configurable-http-proxy@$chp_version" 1>&2
  fi
  missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v jupyterhub >/dev/null || missing+=(jupyterhub)
  /usr/bin/python3 -c 'import jupyter_server' 2>/dev/null || missing+=(python3-jupyter-server)
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" 1>&2
  fi
  extra=(--chp "$chp_dir/node_modules/.bin/configurable-http-proxy")
fi
dotnet build bench/Dsvm.Bench/Dsvm.Bench.csproj -c Release --artifacts-path "$out" -nologo -v quiet 1>&2
cli="$out/bin/Dsvm.Cli/release/dsvm.dll"
if [[ " $* " == *" --suite starts "* || " $* " == *" --suite=starts "* ]]; then
  # The CLI as ./run.sh publishes it (ReadyToRun): the start a user gets.
  dotnet publish src/Dsvm.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    --artifacts-path "$out/r2r" -nologo -v quiet -clp:ErrorsOnly 1>&2
  cli="$out/r2r/publish/Dsvm.Cli/release_linux-x64/dsvm.dll"
else
  dotnet build src/Dsvm.Cli/Dsvm.Cli.csproj -c Release --artifacts-path "$out" -nologo -v quiet 1>&2
fi
# --suite kubernetes: the lab cluster of scripts/kubernetes-lab.sh (binaries built once per machine, ~24 min cold),
# started here unless KUBECONFIG names a cluster already, and stopped at the end. Every home deleted leaves its static
# volume Released (Retain, as on a real cluster with local volumes), so the lab gets 400 of them, not its default 64.
if [[ " $* " == *" --suite kubernetes "* || " $* " == *" --suite=kubernetes "* ]] && [ -z "${KUBECONFIG:-}" ]; then
  ./scripts/kubernetes-lab.sh stop >/dev/null 2>&1 || true
  k8s_bin="$(./scripts/kubernetes-lab-build.sh)"
  eval "$(DSVM_K8S_LAB_BIN="$k8s_bin" DSVM_K8S_LAB_VOLUMES="${DSVM_K8S_LAB_VOLUMES:-400}" ./scripts/kubernetes-lab.sh start)"
  trap './scripts/kubernetes-lab.sh stop >/dev/null 2>&1' EXIT
fi
# Not exec: the trap above must run when the benchmark ends.
dotnet "$out/bin/Dsvm.Bench/release/Dsvm.Bench.dll" --cli "$cli" "${extra[@]}" "$@"
