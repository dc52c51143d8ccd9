"""Speed of lpsim.quantize from Python against the Rust kernel it calls, measured in one run.

For each (format, rounding) of `lpsim bench quantize`, on 2^24 float32 standard normal values:
the Rust kernel's time (`lpsim._native.kernel_seconds`: the library's parallel f32 kernel timed
inside Rust, into a buffer allocated before the clock starts) and lpsim.quantize's time from
Python (argument handling, the GIL released, the same kernel, into an `out` array allocated
once), alternated rep by rep so that a drift of the machine's speed moves both alike. Prints
the median rates and the median of the per-rep ratios python / kernel, and (for information)
the rate of lpsim.quantize returning a new array, which also pays for the fresh pages.

When QPyTorch (`qtorch`) and PyTorch are importable, also times QPyTorch's CPU
`float_quantize` on the same data for the float formats it has (bf16 = exp 8, man 7;
e5m2 = exp 5, man 2), rounding "nearest" or "stochastic" (its "nearest" rounds ties away from
zero and saturates: lpsim's `qtorch:e=,m=` with `rna` is the same function, whose results the
script also compares bit for bit). QPyTorch's JIT build needs `ninja` on PATH.

    python python/bench_quantize.py [--threads N] [--reps R] [--log2n 24] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

# Import the installed package, not the source folder lpsim/ beside this script (which lacks
# the compiled module).
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import lpsim
from lpsim import _native

CASES = [
    ("bf16", "rne"),
    ("bf16", "sr"),
    ("e4m3fn", "rne"),
    ("e4m3fn", "sr"),
    ("e5m2", "rne"),
    ("fixed:wl=8,fl=6", "sr"),
    ("bfp:wl=8,size=32", "sr"),
    ("mxfp8", "rne"),
    # QPyTorch's own semantics (ties away from zero, saturating): the like-for-like comparison.
    ("qtorch:e=8,m=7", "rna"),
    ("qtorch:e=8,m=7", "sr"),
    ("qtorch:e=5,m=2", "rna"),
]

# QPyTorch float_quantize equivalents: (exp, man) and its rounding name.
QTORCH = {("bf16", "rne"): (8, 7, "nearest"), ("bf16", "sr"): (8, 7, "stochastic"),
          ("e5m2", "rne"): (5, 2, "nearest"), ("qtorch:e=8,m=7", "rna"): (8, 7, "nearest"),
          ("qtorch:e=8,m=7", "sr"): (8, 7, "stochastic"), ("qtorch:e=5,m=2", "rna"): (5, 2, "nearest")}


def qtorch_rate(x: np.ndarray, fmt: str, rounding: str, reps: int):
    """QPyTorch's float_quantize rate (values/s) on x and, for its "nearest" on a `qtorch:`
    format, whether its values equal lpsim's bit for bit; None when it is not installed."""
    if (fmt, rounding) not in QTORCH:
        return None
    try:
        import torch
        from qtorch.quant import float_quantize
    except ImportError:
        return None
    exp, man, mode = QTORCH[(fmt, rounding)]
    t = torch.from_numpy(x)
    ref = float_quantize(t, exp, man, mode).numpy()  # warm-up (and the JIT build of QPyTorch)
    same = None
    if fmt.startswith("qtorch:") and mode == "nearest":
        same = bool(np.array_equal(ref.view(np.uint32), lpsim.quantize(x, fmt, rounding).view(np.uint32)))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        float_quantize(t, exp, man, mode)
        times.append(time.perf_counter() - t0)
    return x.size / statistics.median(times), same


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="threads of both sides (default 1)")
    p.add_argument("--reps", type=int, default=7, help="timed pairs per case (default 7)")
    p.add_argument("--log2n", type=int, default=24, help="log2 of the element count (default 24)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    n = 1 << a.log2n
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    rows = []
    for fmt, rounding in CASES:
        kernel, python, fresh, ratios = [], [], [], []
        lpsim.quantize(x, fmt, rounding, threads=a.threads, out=out)  # warm-up
        for _ in range(a.reps):
            k = _native.kernel_seconds(x, fmt, rounding, 0, a.threads)
            t0 = time.perf_counter()
            lpsim.quantize(x, fmt, rounding, threads=a.threads, out=out)
            py = time.perf_counter() - t0
            t0 = time.perf_counter()
            lpsim.quantize(x, fmt, rounding, threads=a.threads)
            fresh.append(time.perf_counter() - t0)
            kernel.append(k)
            python.append(py)
            ratios.append(k / py)
        row = {
            "case": f"{fmt}/{rounding}",
            "kernel_per_s": n / statistics.median(kernel),
            "python_per_s": n / statistics.median(python),
            "ratio": statistics.median(ratios),
            "python_new_array_per_s": n / statistics.median(fresh),
        }
        q = qtorch_rate(x, fmt, rounding, a.reps)
        if q is not None:
            row["qtorch_per_s"] = q[0]
            row["python_over_qtorch"] = row["python_per_s"] / q[0]
            if q[1] is not None:
                row["same_bits_as_qtorch"] = q[1]
        rows.append(row)
    if a.json:
        print(json.dumps({"n": n, "threads": a.threads, "reps": a.reps, "rows": rows}, indent=1))
        return
    print(f"lpsim.quantize vs the Rust kernel: {n} float32 values, {a.threads} thread(s), "
          f"median of {a.reps} alternated pairs")
    print(f"{'case':<22} {'kernel /s':>10} {'python /s':>10} {'ratio':>6} {'new arr /s':>10} "
          f"{'qtorch /s':>10} {'x qtorch':>9}")
    for r in rows:
        qt = f"{r['qtorch_per_s']:10.3e} {r['python_over_qtorch']:9.1f}" if "qtorch_per_s" in r else f"{'-':>10} {'-':>9}"
        same = {True: "  same bits", False: "  DIFFERENT BITS"}.get(r.get("same_bits_as_qtorch"), "")
        print(f"{r['case']:<22} {r['kernel_per_s']:10.3e} {r['python_per_s']:10.3e} {r['ratio']:6.3f} "
              f"{r['python_new_array_per_s']:10.3e} {qt}{same}")


if __name__ == "__main__":
    main()
