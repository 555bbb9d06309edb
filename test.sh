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
