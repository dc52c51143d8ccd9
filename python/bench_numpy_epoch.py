"""A plain NumPy float32 training epoch of the MLP `lpsim bench train` times: the baseline of
issue 13's target ("no slower than a plain NumPy float32 training epoch of the same model
without any emulation").

The digits training set (`workloads/data/digits.csv.gz`, 1437 of its 1797 rows, standardized),
an MLP 64-`--hidden`-10 with ReLU and softmax cross-entropy, mini-batches of `--batch` examples
in order (`ceil(1437 / batch)` steps), plain SGD; with `--sgld`, Gaussian noise of scale
`sqrt(2 lr / N)` is added to every parameter after each step (NumPy's float32
`standard_normal`), as SGLD does. Everything is float32 with no emulation. Run it on one
thread (`OPENBLAS_NUM_THREADS=1`) to compare with `lpsim bench train --threads 1`. Prints the
median and the fastest epoch after one warm-up epoch.

    OPENBLAS_NUM_THREADS=1 python python/bench_numpy_epoch.py [--sgld] [--epochs 30]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "workloads" / "data" / "digits.csv.gz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=256, help="hidden units (default 256)")
    p.add_argument("--batch", type=int, default=64, help="examples per step (default 64)")
    p.add_argument("--epochs", type=int, default=30, help="timed epochs (default 30)")
    p.add_argument("--lr", type=float, default=0.05, help="step size (default 0.05)")
    p.add_argument("--sgld", action="store_true", help="add SGLD's Gaussian noise each step")
    a = p.parse_args()
    if a.hidden < 1 or a.batch < 1 or a.epochs < 1:
        p.error("--hidden, --batch and --epochs must be at least 1")

    with gzip.open(DATA, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    x, y = rows[:1437, :-1], rows[:1437, -1].astype(int)
    std = x.std(0)
    x = ((x - x.mean(0)) / np.where(std > 0, std, 1)).astype(np.float32)
    n, d = x.shape
    h, c = a.hidden, 10
    rng = np.random.default_rng(0)
    w0 = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(np.float32)
    b0 = np.zeros(h, np.float32)
    w1 = (rng.standard_normal((h, c)) / np.sqrt(h)).astype(np.float32)
    b1 = np.zeros(c, np.float32)
    onehot = np.eye(c, dtype=np.float32)[y]
    lr = np.float32(a.lr)
    scale = np.float32(np.sqrt(2 * a.lr / n))

    def epoch() -> None:
        for s in range(0, n, a.batch):
            xb, yb = x[s : s + a.batch], onehot[s : s + a.batch]
            z = xb @ w0 + b0
            act = np.maximum(z, 0)
            o = act @ w1 + b1
            o -= o.max(1, keepdims=True)
            prob = np.exp(o)
            prob /= prob.sum(1, keepdims=True)
            go = (prob - yb) / np.float32(len(xb))
            gw1, gb1 = act.T @ go, go.sum(0)
            ga = (go @ w1.T) * (z > 0)
            gw0, gb0 = xb.T @ ga, ga.sum(0)
            for param, grad in ((w0, gw0), (b0, gb0), (w1, gw1), (b1, gb1)):
                param -= lr * grad
                if a.sgld:
                    param += scale * rng.standard_normal(param.shape, dtype=np.float32)

    times = []
    for _ in range(a.epochs + 1):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    timed = sorted(times[1:])
    kind = "SGLD" if a.sgld else "SGD"
    print(
        f"NumPy {np.__version__} float32 {kind} epoch, MLP {d}-{h}-{c}, batch {a.batch}, "
        f"{-(-n // a.batch)} steps: median {1e3 * timed[len(timed) // 2]:.2f} ms, "
        f"fastest {1e3 * timed[0]:.2f} ms"
    )


if __name__ == "__main__":
    main()
