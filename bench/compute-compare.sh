#!/usr/bin/env bash
# A 2000x2000 matmul, a RandomForest fit and 20 small torch training steps in two images, interleaved, 3 rounds:
#   bench/compute-compare.sh OLD_IMAGE NEW_IMAGE      (2 CPUs each; DSVM_CPUS=2 as a medium workspace gets)
# Bare containers (docker run), so it also compares images that no longer start as workspaces (before the uid
# change); `bench/run.sh --suite compute` is the workspace benchmark. Uses the Docker engine.
set -euo pipefail
code='import time, numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.datasets import make_classification
import torch
a = np.random.default_rng(0).random((2000, 2000)); a @ a
t0 = time.perf_counter(); a @ a; t1 = time.perf_counter()
X, y = make_classification(n_samples=5000, n_features=40, random_state=0)
t2 = time.perf_counter(); RandomForestClassifier(n_estimators=50, n_jobs=-1, random_state=0).fit(X, y); t3 = time.perf_counter()
m = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)); opt = torch.optim.SGD(m.parameters(), lr=0.01)
x = torch.randn(256, 512); yy = torch.randint(0, 10, (256,))
t4 = time.perf_counter()
for _ in range(20):
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), yy).backward(); opt.step()
t5 = time.perf_counter()
print("matmul2000 %.3f rf %.3f torch20 %.3f" % (t1 - t0, t3 - t2, t5 - t4))'
for i in 1 2 3; do
  for img in "$1" "$2"; do
    echo "$img $(docker run --rm --network none --cpus 2 -e DSVM_CPUS=2 "$img" python3 -c "$code" 2>&1 | tail -1)"
  done
done
