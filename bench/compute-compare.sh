#!/usr/bin/env bash
# A 2000x2000 matmul, a RandomForest fit and 20 small torch training steps in two images, interleaved, 3 rounds:
#   bench/compute-compare.sh OLD_IMAGE NEW_IMAGE      (2 CPUs each; DSVM_CPUS=2 as a medium workspace gets)
# Bare containers (docker run), so it also compares images that no longer start as workspaces (before the uid
# change); `bench/run.sh --suite compute` is the workspace benchmark. Uses the Docker engine.
set -euo pipefail
code=$(cat "$(dirname "$0")/compute-workload.py")
for i in 1 2 3; do
  for img in "$1" "$2"; do
    echo "$img $(docker run --rm --network none --cpus 2 -e DSVM_CPUS=2 "$img" python3 -c "$code" 2>&1 | tail -1)"
  done
done
