#!/usr/bin/env bash
# Builds the benchmark (and the dsvm CLI, for its CLI row) in Release and runs it; every argument goes to the
# benchmark (see bench/run.sh --help). The build goes to .dsvm/bench-build (bin and obj both), so it never touches
# the bin/obj folders that a concurrent `dotnet build` or `dotnet test` of the solution is using.
# Build output goes to stderr: stdout holds only the tables, or the JSON with --output json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.dsvm/bench-build
dotnet build bench/Dsvm.Bench/Dsvm.Bench.csproj -c Release --artifacts-path "$out" -nologo -v quiet 1>&2
dotnet build src/Dsvm.Cli/Dsvm.Cli.csproj -c Release --artifacts-path "$out" -nologo -v quiet 1>&2
exec dotnet "$out/bin/Dsvm.Bench/release/Dsvm.Bench.dll" --cli "$out/bin/Dsvm.Cli/release/dsvm.dll" "$@"
