#!/usr/bin/env python3
"""LP-SGLD (Zhang, Wilson and De Sa, ICML 2022) written QPyTorch-style, run on lpsim.qtorch.

Bayesian logistic regression on the digits data (workloads/data/digits.csv.gz: 8x8 images,
pixel values 0..16, label last; the first 1437 rows train, the last 360 test), sampled with
SGLD in three ways, as in the LP-SGLD authors' QPyTorch code (a torch SGD optimizer wrapped in
QPyTorch's OptimLP, the Langevin noise added to the gradient so that the step is
``theta - lr * grad U(theta) + sqrt(2 lr T) xi``):

- ``fp32``: full-precision SGLD;
- ``lp-f``: LP-SGLD with full-precision gradient accumulators: the weights used for gradients
  are the accumulators rounded to 8-bit fixed point (``FixedPoint(8, 6)``) with stochastic
  rounding (OptimLP's ``acc_quant`` keeps the accumulators, ``weight_quant`` rounds);
- ``lp-naive``: naive LP-SGLD: the weights are stored in 8-bit fixed point and every update is
  rounded stochastically (``weight_quant`` only).

Predictions average the samples after burn-in (Bayesian model average). The only line that
differs from the QPyTorch version of this script is the import block below (``qtorch`` ->
``lpsim.qtorch``); with QPyTorch the stochastic rounding is unseeded, with lpsim it is seeded
(``lpsim.qtorch.manual_seed``, seed 0 by default), so every run prints the same numbers.

Run: ``python python/examples/lpsgld_qtorch.py`` from the repository root (needs torch;
a few seconds on one core).
"""

import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch

# QPyTorch version: from qtorch import FixedPoint / from qtorch.quant import quantizer /
# from qtorch.optim import OptimLP
from lpsim.qtorch import FixedPoint
from lpsim.qtorch.optim import OptimLP
from lpsim.qtorch.quant import quantizer

DATA = Path(__file__).resolve().parents[2] / "workloads" / "data" / "digits.csv.gz"
EPOCHS, BATCH, BURN_IN, LR, TEMPERATURE, PRIOR_PRECISION = 20, 64, 10, 1e-3, 1.0, 1.0


def load():
    with gzip.open(DATA, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = torch.from_numpy(rows[:, :-1] / 16), torch.from_numpy(rows[:, -1]).long()
    return (x[:1437], y[:1437]), (x[1437:], y[1437:])


def sgld(variant, train, test):
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = train, test
    n = len(xtr)
    model = torch.nn.Linear(64, 10)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=PRIOR_PRECISION)
    weight_q = quantizer(forward_number=FixedPoint(wl=8, fl=6), forward_rounding="stochastic")
    if variant == "lp-f":
        optimizer = OptimLP(optimizer, weight_quant=weight_q, acc_quant=lambda t: t)
    elif variant == "lp-naive":
        optimizer = OptimLP(optimizer, weight_quant=weight_q)
    noise_std = math.sqrt(2 * TEMPERATURE / LR)  # lr * noise = sqrt(2 lr T) xi
    probs, samples = torch.zeros(len(xte), 10), 0
    for epoch in range(EPOCHS):
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            optimizer.zero_grad()
            # U(theta) = N * mean cross-entropy (the prior is SGD's weight_decay)
            loss = n * torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            for p in model.parameters():
                p.grad.add_(torch.randn_like(p) * noise_std)
            optimizer.step()
        if epoch >= BURN_IN:
            with torch.no_grad():
                probs += torch.softmax(model(xte), dim=1)
            samples += 1
    probs /= samples
    acc = (probs.argmax(1) == yte).float().mean().item()
    nll = -torch.log(probs[torch.arange(len(yte)), yte].clamp_min(1e-12)).mean().item()
    grid = torch.unique(model.weight.detach()).numel()
    return acc, nll, grid


def main():
    train, test = load()
    print(f"digits: {len(train[0])} train / {len(test[0])} test; logistic regression; "
          f"SGLD lr={LR}, T={TEMPERATURE}, {EPOCHS} epochs, batch {BATCH}, burn-in {BURN_IN}")
    for variant in ("fp32", "lp-f", "lp-naive"):
        t = time.perf_counter()
        acc, nll, grid = sgld(variant, train, test)
        print(f"{variant:9s} test accuracy {acc:.4f}  NLL {nll:.4f}  "
              f"distinct weight values {grid:5d}  ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
