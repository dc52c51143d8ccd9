#!/usr/bin/env python3
"""Reference vectors for tests/ml_dtypes.rs, from an independent implementation.

Casts f32 and f64 inputs to each format with ml_dtypes 0.6.0 (and NumPy's float16 / int8), which
round to nearest-even directly from the source type (integer casts truncate toward zero and
wrap). For each format NAME and source width W it writes `ml_dtypes/NAME_fW.bin`: little-endian
records `(input bits: u32 or u64, output code: u16)`.

Inputs: every code's value (sampled for the 16-bit formats) and its neighbours in the source
type, every midpoint between consecutive values (ties) and its neighbours, the overflow
threshold and its neighbours, source subnormals, +-0, +-inf, NaN, and random bit patterns.
Regenerate with `python3 tests/data/gen_ml_dtypes.py` from the repository root; fixed seed.
"""
import os
import sys

import ml_dtypes
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ml_dtypes")
RNG = np.random.default_rng(20240601)

FLOATS = {
    "bf16": (ml_dtypes.bfloat16, 16),
    "fp16": (np.float16, 16),
    "e5m2": (ml_dtypes.float8_e5m2, 8),
    "e4m3fn": (ml_dtypes.float8_e4m3fn, 8),
    "e4m3fnuz": (ml_dtypes.float8_e4m3fnuz, 8),
    "e5m2fnuz": (ml_dtypes.float8_e5m2fnuz, 8),
    "e3m2fn": (ml_dtypes.float6_e3m2fn, 6),
    "e2m3fn": (ml_dtypes.float6_e2m3fn, 6),
    "e2m1fn": (ml_dtypes.float4_e2m1fn, 4),
    "e8m0fnu": (ml_dtypes.float8_e8m0fnu, 8),
}
INTS = {"int4": (ml_dtypes.int4, 4), "int8": (np.int8, 8)}
SAMPLED_CODES = 700  # codes sampled from the 16-bit formats
RANDOM_PATTERNS = 800


def code_of(arr, dtype, bits):
    store = np.uint16 if bits == 16 else np.uint8
    return (arr.astype(dtype).view(store).astype(np.uint64) & ((1 << bits) - 1)).astype(np.uint16)


def finite_values(dtype, bits):
    codes = np.arange(1 << bits, dtype=np.uint16 if bits == 16 else np.uint8)
    if bits < 8:
        codes = codes.astype(np.uint8)
    vals = codes.view(dtype).astype(np.float64)
    vals = np.unique(vals[np.isfinite(vals)])
    if len(vals) > 2 * SAMPLED_CODES:
        keep = RNG.choice(len(vals) - 1, SAMPLED_CODES, replace=False)
        keep = np.unique(np.concatenate([keep, keep + 1, [0, len(vals) - 2, len(vals) - 1]]))
        # Always keep the smallest magnitudes and both ends.
        small = np.argsort(np.abs(vals))[:16]
        keep = np.unique(np.concatenate([keep, small, small + 1, small - 1]))
        keep = keep[(keep >= 0) & (keep < len(vals))]
        vals = vals[keep]
    return vals


def neighbours(x, src):
    x = x.astype(src)
    return np.concatenate([x, np.nextafter(x, src(np.inf)), np.nextafter(x, src(-np.inf))])


def inputs(vals, src, is_int):
    finfo = np.finfo(src)
    parts = [neighbours(vals, src)]
    mids = (vals[:-1] + vals[1:]) / 2  # exact in f64 for these small formats
    parts.append(neighbours(mids, src))
    top = vals.max()
    if not is_int:
        # Overflow threshold: max + half a step of the top binade, and beyond.
        step = top - vals[vals < top].max()
        for t in (top + step / 2, top + step, 2 * top, top * 1.75, top * 4):
            parts.append(neighbours(np.array([t, -t]), src))
        parts.append(np.array([finfo.max, -finfo.max, finfo.tiny, -finfo.tiny], src))
        pos = vals[vals > 0]
        lo = pos.min() if len(pos) else 0
        parts.append(neighbours(np.array([lo / 2, lo / 4, lo * 0.75, -lo / 2, lo / 3]), src))
        sub = RNG.integers(1, 1 << (23 if src == np.float32 else 52), 40)
        width = np.uint32 if src == np.float32 else np.uint64
        parts.append(sub.astype(width).view(src))
        parts.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], src))
        pats = RNG.integers(0, 1 << 32 if src == np.float32 else 1 << 63, RANDOM_PATTERNS,
                            dtype=np.uint64, endpoint=False)
        if src == np.float32:
            pats = pats.astype(np.uint32)
        else:
            pats = pats | (RNG.integers(0, 2, RANDOM_PATTERNS, dtype=np.uint64) << np.uint64(63))
        parts.append(pats.view(src))
        # Random values spread over the format's range (log-uniform magnitudes).
        e = RNG.uniform(np.log2(max(lo, 1e-300)) - 2, np.log2(top) + 1, 1000)
        parts.append((np.exp2(e) * RNG.choice([-1.0, 1.0], 1000)).astype(src))
    else:
        ints = RNG.uniform(-2.0**31 + 1, 2.0**31 - 1, 600)
        parts.append(ints.astype(src))
        parts.append(np.round(RNG.uniform(-1000, 1000, 400)).astype(src) + src(0.5))
        parts.append(RNG.uniform(-300, 300, 600).astype(src))
        parts.append(np.array([0.0, -0.0, 0.5, -0.5, 0.99, -0.99], src))
    x = np.concatenate([p.astype(src) for p in parts])
    if is_int:
        x = x[np.isfinite(x) & (np.abs(x) < 2.0**31)]
    else:
        x = np.concatenate([x, -x])
    # Deduplicate by bit pattern, keep a stable order.
    width = np.uint32 if src == np.float32 else np.uint64
    _, idx = np.unique(x.view(width), return_index=True)
    return x[np.sort(idx)]


def write(name, src, x, codes):
    width = "<u4" if src == np.float32 else "<u8"
    rec = np.zeros(len(x), dtype=[("x", width), ("code", "<u2")])
    rec["x"] = x.view(np.uint32 if src == np.float32 else np.uint64)
    rec["code"] = codes
    suffix = "f32" if src == np.float32 else "f64"
    path = os.path.join(OUT, f"{name}_{suffix}.bin")
    rec.tofile(path)
    return len(x)


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    with np.errstate(all="ignore"):
        for name, (dtype, bits) in {**FLOATS, **INTS}.items():
            is_int = name in INTS
            if is_int:
                vals = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.float64)
            else:
                vals = finite_values(dtype, bits)
            for src in (np.float32, np.float64):
                x = inputs(vals, src, is_int)
                codes = code_of(x, dtype, bits)
                if src == np.float64 and not is_int and name != "fp16":
                    # ml_dtypes casts f64 through f32 (two roundings); tests/ml_dtypes.rs relies
                    # on this, so check it holds for every row.
                    assert (codes == code_of(x.astype(np.float32), dtype, bits)).all(), name
                total += write(name, src, x, codes)
    print(f"wrote {total} rows to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
