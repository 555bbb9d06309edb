# The compute benchmark's workload (bench/run.sh --suite compute, bench/compute-compare.sh): prints one line
# "matmul2000 S rf S torch20 S" (seconds).
import time, numpy as np
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
print("matmul2000 %.4f rf %.4f torch20 %.4f" % (t1 - t0, t3 - t2, t5 - t4))

