#!/usr/bin/env bash
# The main job on one machine (embedded default: local Docker engine, SQLite): prepare the host, build the
# dsvm tool, build the default `datascience` environment (first time: ~8 min), start a workspace on it and
# print its JupyterLab URL.
# Extra arguments go to `dsvm up` (e.g. ./run.sh --env minimal --size small).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/host-setup.sh
# ReadyToRun (precompiled): every dsvm command starts faster than the JIT build (bench/cli-startup.sh: `dsvm sizes`
# 0.59x the time, docs/benchmarks.md).
dotnet publish src/Dsvm.Cli -c Release --use-current-runtime --self-contained false -p:PublishReadyToRun=true \
  -o .dsvm/bin -v quiet -nologo -clp:ErrorsOnly
exec dotnet .dsvm/bin/dsvm.dll up "$@"
