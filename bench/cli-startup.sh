#!/usr/bin/env bash
# How long one `dsvm` command takes from process start to exit, the CLI as `dotnet build` makes it (JIT) vs as
# ./run.sh publishes it (ReadyToRun), in interleaved rounds (order alternated per round). Commands that touch no
# engine: `dsvm --version` and `dsvm sizes`. Prints per-command medians and the ratio R2R / JIT.
# Usage: bench/cli-startup.sh [ROUNDS]   (default 10). Builds go to .dsvm/bench-cli (never the solution's bin/obj).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
out=.dsvm/bench-cli
dotnet build src/Dsvm.Cli -c Release --artifacts-path "$out/jit" -nologo -v quiet -clp:ErrorsOnly 1>&2
dotnet publish src/Dsvm.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  --artifacts-path "$out/r2r" -nologo -v quiet -clp:ErrorsOnly 1>&2
jit="$out/jit/bin/Dsvm.Cli/release/dsvm.dll"
r2r="$out/r2r/publish/Dsvm.Cli/release_linux-x64/dsvm.dll"
export DSVM_HOME="$out/home"
mkdir -p "$DSVM_HOME"
ms() { local s e; s=$(date +%s%N); dotnet "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
printf '%-12s %10s %10s %8s\n' command "jit ms" "r2r ms" "r2r/jit"
for cmd in --version sizes; do
  j=(); r=()
  for i in $(seq 1 "$rounds"); do
    if (( i % 2 )); then j+=("$(ms "$jit" $cmd)"); r+=("$(ms "$r2r" $cmd)"); else r+=("$(ms "$r2r" $cmd)"); j+=("$(ms "$jit" $cmd)"); fi
  done
  mj=$(printf '%s\n' "${j[@]}" | median); mr=$(printf '%s\n' "${r[@]}" | median)
  printf '%-12s %10s %10s %8s\n' "$cmd" "$mj" "$mr" "$(awk -v a="$mr" -v b="$mj" 'BEGIN { printf "%.2f", a / b }')"
done
