#!/usr/bin/env python3
"""Reference vectors for tests/qtorch.rs, from the real QPyTorch.

Run with QPyTorch 0.3.0 on torch 2.15.0 (the PyPI build, 2.15.0+cu132, on CPU tensors: QPyTorch's
CPU kernels, the C++ extension it compiles at import, here with g++ 12.2; needs `ninja` on PATH),
NumPy 2.4.6 and Python 3.11.7:

    python3 -m venv /tmp/venv-qt && . /tmp/venv-qt/bin/activate   # outside the repository
    pip install torch==2.15.0 qtorch==0.3.0 ninja numpy==2.4.6
    python3 tests/data/gen_qtorch.py        # from the repository root; fixed seed

It writes four gzip files under `tests/data/qtorch/` (mtime 0: a rerun gives the same bytes,
except `sr_means.bin.gz`, see below), each a sequence of cases. A case is a little-endian header of five 32-bit integers
`(p0, p1, p2, p3, n)` followed by `n` records `(input f32 bits: u32, output f32 bits: u32)`:

- `float.bin.gz`: `float_quantize(x, exp=p0, man=p1, rounding="nearest")`, p2 = p3 = 0, for
  every exp in 2..=8 and man in 0..=22 except (8, 0) (lpsim refuses it: see `QTorchFloat::new`).
- `fixed.bin.gz`: `fixed_point_quantize(x, wl=p0, fl=p1, clamp=p2, symmetric=p3,
  rounding="nearest")`.
- `block.bin.gz`: `block_quantize(x, wl=p0, dim=p1, rounding="nearest")` on a tensor of shape
  `[p2, p3]` (row-major records; `n = p2 * p3`).

Inputs: each format's values and their f32 neighbours, ties (midpoints) and their neighbours,
the overflow threshold and beyond, subnormals (of the format and of f32), +-0, +-inf, NaN of
both signs, out-of-range and random values, random bit patterns (a signaling NaN among them is
given quieted: lpsim's `f64` carrier sets the quiet bit of every NaN it reads).

`sr_means.bin.gz` (same case layout, outputs are the mean over `SR_DRAWS` draws as f32 bits)
holds QPyTorch's stochastic rounding averaged per input, for a sanity check of lpsim's `sr`:
the case kind is p3 (0 float (p0, p1) = (exp, man); 1 fixed (wl, fl) clamped, not symmetric;
2 block (wl) over the whole tensor, the inputs one tensor), p2 = SR_DRAWS. It changes on a
rerun: QPyTorch's CPU float and block kernels seed their generator from `std::random_device`.
"""
import gzip
import os
import struct
import sys

import numpy as np
import torch
from qtorch.quant import block_quantize, fixed_point_quantize, float_quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qtorch")
RNG = np.random.default_rng(20261205)
SR_DRAWS = 4000
SPECIAL_BITS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x80000001, 0x00800000, 0x807FFFFF]


def f32(values):
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def bits_to_f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def around(x):
    """x and its f32 neighbours (both signs are added later)."""
    x = f32(x)
    with np.errstate(all="ignore"):
        return np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                               np.nextafter(x, np.float32(-np.inf))])


def finish(parts):
    x = np.concatenate([p.astype(np.float32) for p in parts])
    x = np.concatenate([x, -x, bits_to_f32(SPECIAL_BITS)])
    # Signaling NaNs quieted: lpsim's f64 carrier sets their quiet bit on the way in (a
    # documented deviation), so a random pattern that is one is given as its quiet NaN.
    b = x.view(np.uint32)
    signaling = ((b & 0x7F800000) == 0x7F800000) & ((b & 0x007FFFFF) != 0) & ((b & 0x00400000) == 0)
    x = np.where(signaling, (b | 0x00400000).view(np.float32), x)
    _, idx = np.unique(x.view(np.uint32), return_index=True)
    return x[np.sort(idx)]


def float_inputs(exp, man):
    bias = (1 << (exp - 1)) - 1
    emin, emax = 1 - bias, 1 << (exp - 1)  # QPyTorch's binades
    emax_f32 = min(emax, 127)
    step_min = 2.0 ** (emin - man)
    parts = []
    # Values of the format and ties in random binades, the top and the bottom ones included.
    ks = np.concatenate([RNG.integers(emin, emax_f32 + 1, 14), [emin, emax_f32, emin + 1]])
    frac = RNG.integers(0, 1 << man, len(ks)) if man > 0 else np.zeros(len(ks), dtype=np.int64)
    vals = (1 + frac / 2.0 ** man) * 2.0 ** ks
    steps = 2.0 ** (ks - man)
    parts += [around(vals), around(vals + steps / 2)]
    # The largest value, the overflow threshold (a tie) and beyond; IEEE's largest.
    top = (2 - 2.0 ** -man) * 2.0 ** emax_f32
    ieee = (2 - 2.0 ** -man) * 2.0 ** (emax_f32 - 1)
    with np.errstate(over="ignore"):
        parts.append(around([top, top + 2.0 ** (emax_f32 - man - 1), ieee, 2 * ieee,
                             1.5 * top, 2.0 ** emax_f32]))
        parts.append(around([t for t in (2 * top, 4 * top, 1e30, 3e38) if t < 3.4e38]))
    # Subnormals of the format: the smallest, half of it (a tie), random ones; the smallest
    # normal; f32 subnormals.
    sub = RNG.integers(1, 1 << man, 6) * step_min if man > 0 else np.array([])
    parts.append(around(np.concatenate([[step_min, step_min / 2, 1.5 * step_min,
                                         2.0 ** emin, 2.0 ** emin - step_min / 2], sub])))
    parts.append(around(sub + step_min / 2))
    parts.append(bits_to_f32(RNG.integers(1, 1 << 23, 6)))
    # Random magnitudes over the range and random bit patterns.
    lo = max(emin - man - 3, -149)
    parts.append(f32(2.0 ** RNG.uniform(lo, emax_f32 + 2, 24)))
    parts.append(bits_to_f32(RNG.integers(0, 1 << 32, 12, dtype=np.uint64).astype(np.uint32)))
    return finish(parts)


FIXED = [(2, 0), (4, 2), (4, -3), (8, 0), (8, 4), (8, 7), (8, 12), (12, 20), (16, 8),
         (16, -8), (24, 0), (25, 2), (26, 4), (32, 0), (32, 16), (6, 140), (20, 100)]


def fixed_inputs(wl, fl):
    step = 2.0 ** -fl
    hi = 2.0 ** (wl - fl - 1)
    parts = []
    n = RNG.integers(-(1 << (wl - 1)), 1 << (wl - 1), 24, dtype=np.int64, endpoint=False)
    parts += [around(n * step), around((n + 0.5) * step)]
    parts.append(around(np.array([0.5, 1.5, 2.5, 0.3, 0.7, 1.0]) * step))
    parts.append(around([hi, hi - step, hi - step / 2, hi + step / 2, 2 * hi, 1e30, 3e38]))
    # Odd integers of steps in [2^23, 2^24), where the f32 add of 0.5 rounds.
    odd = 2 * RNG.integers(2 ** 22, 2 ** 23, 4) + 1
    parts.append(f32(odd * step))
    parts.append(f32(2.0 ** RNG.uniform(-fl - 4, wl - fl + 2, 24)))
    parts.append(bits_to_f32(RNG.integers(1, 1 << 23, 4)))
    parts.append(bits_to_f32(RNG.integers(0, 1 << 32, 8, dtype=np.uint64).astype(np.uint32)))
    return finish(parts)


BLOCK_WL = [2, 3, 4, 6, 8, 12, 16, 20, 22]


def block_tensors(wl):
    """Tensors of shape [rows, cols]: rows of one scale each, with ties of their row's grid;
    then small rows of special cases."""
    rows = []
    for _ in range(6):
        k = int(RNG.integers(-30, 30))
        step = 2.0 ** (k + 2 - wl)
        levels = 1 << (wl - 1)
        n = RNG.integers(-levels + 1, levels, 8)
        row = np.concatenate([[1.5 * 2.0 ** k], n * step, (n[:3] + 0.5) * step,
                              RNG.uniform(-2, 2, 4) * 2.0 ** k])
        ties = f32((n[3:6] + 0.5) * step)
        with np.errstate(all="ignore"):
            row = np.concatenate([f32(row), np.nextafter(ties, np.float32(np.inf)),
                                  np.nextafter(ties, np.float32(-np.inf)), [-0.0]])
        rows.append(f32(row))
    ordinary = np.stack(rows)
    specials = [
        [1.0, -0.0, 0.0, 2.0 ** -30, -(2.0 ** -30), 0.75, -0.125, 0.125],  # zeros, tiny
        [2.0 ** -127, 2.0 ** -129, -(2.0 ** -131), 1.9 * 2.0 ** -127, 0.0, 2.0 ** -149,
         -(2.0 ** -140), 1.3 * 2.0 ** -128],  # largest magnitude subnormal
        [2.0 ** 126, 1.0, -3.0, 0.0, -0.0, 2.0 ** 125, -(2.0 ** 120), 7.0],  # offset overflows
        [1.9 * 2.0 ** 125, 1.0, -(2.0 ** 125), 2.0 ** 124, 3.0e37, 0.0, -1.0e37, 5.0],
        [np.inf, 1.0, -2.0, 0.0, 0.5, -0.0, 3.0, 4.0],
        [-np.inf, 1.0, -2.0, 0.0, 0.5, -0.0, 3.0, 4.0],
        [np.nan, 1.0, -2.0, 0.0, 0.5, -0.0, 3.0, 4.0],
        [0.0, 0.0, -0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
    return [ordinary] + [f32([row]) for row in specials]


def case(p, x, y):
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
    rec = np.empty(2 * len(x), dtype="<u4")
    rec[0::2] = x.view(np.uint32)
    rec[1::2] = y.view(np.uint32)
    return struct.pack("<5i", *p, len(x)) + rec.tobytes()


def write(name, chunks):
    path = os.path.join(OUT, name)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                 filename="") as f:
        f.write(b"".join(chunks))
    return os.path.getsize(path)


def sr_mean(fn, x):
    t = torch.from_numpy(np.ascontiguousarray(x))
    acc = torch.zeros_like(t, dtype=torch.float64)
    for _ in range(SR_DRAWS):
        acc += fn(t).to(torch.float64)
    return (acc / SR_DRAWS).to(torch.float32).numpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20261205)
    sizes = {}
    chunks = []
    for exp in range(2, 9):
        for man in range(0, 23):
            if (exp, man) == (8, 0):
                continue
            x = float_inputs(exp, man)
            y = float_quantize(torch.from_numpy(x), exp=exp, man=man, rounding="nearest")
            chunks.append(case((exp, man, 0, 0), x, y.numpy()))
    sizes["float"] = write("float.bin.gz", chunks)

    chunks = []
    for wl, fl in FIXED:
        x = fixed_inputs(wl, fl)
        for clamp in (True, False):
            for symmetric in (False, True):
                y = fixed_point_quantize(torch.from_numpy(x), wl=wl, fl=fl, clamp=clamp,
                                         symmetric=symmetric, rounding="nearest")
                chunks.append(case((wl, fl, int(clamp), int(symmetric)), x, y.numpy()))
    sizes["fixed"] = write("fixed.bin.gz", chunks)

    chunks = []
    for wl in BLOCK_WL:
        for t in block_tensors(wl):
            for dim in (-1, 0, 1):
                y = block_quantize(torch.from_numpy(t), wl=wl, dim=dim, rounding="nearest")
                chunks.append(case((wl, dim, t.shape[0], t.shape[1]), t, y.numpy()))
    sizes["block"] = write("block.bin.gz", chunks)

    chunks = []
    x = f32([1.0 + 2.0 ** -6, 0.3, -0.7, 3.1, -100.5, 2.0 ** -8 * 1.3])
    for exp, man in [(4, 3), (5, 2), (8, 7)]:
        m = sr_mean(lambda t: float_quantize(t, exp=exp, man=man, rounding="stochastic"), x)
        chunks.append(case((exp, man, SR_DRAWS, 0), x, m))
    for wl, fl in [(8, 4), (12, 8)]:
        m = sr_mean(lambda t: fixed_point_quantize(t, wl=wl, fl=fl, rounding="stochastic"), x)
        chunks.append(case((wl, fl, SR_DRAWS, 1), x, m))
    for wl in (4, 8):
        m = sr_mean(lambda t: block_quantize(t, wl=wl, dim=-1, rounding="stochastic"), x)
        chunks.append(case((wl, -1, SR_DRAWS, 2), x, m))
    sizes["sr_means"] = write("sr_means.bin.gz", chunks)
    print(f"torch {torch.__version__}; wrote {sizes} bytes to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    with np.errstate(all="ignore"):
        main()
