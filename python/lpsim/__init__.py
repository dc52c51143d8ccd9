"""lpsim: bit-accurate low-precision number formats, rounding units and MACs, a hardware cost
model, and low-precision learning algorithms (LP-SGLD, QSGLD, HALP), from Python.

Every number is computed by the lpsim Rust crate (the native module ``lpsim._native``), so the
results are those of the ``lpsim`` command line, bit for bit. Kernels release the GIL and run on
a rayon thread pool; ``threads=N`` picks a pool of N threads (default: all cores), and no result
depends on the number of threads.

Functions: :func:`quantize`, :func:`formats`, :class:`Format`, :func:`gemm`, :func:`cost`,
:func:`run`, :func:`sweep`, :func:`from_json`. Errors: :class:`LpsimError` (a ``ValueError``)
and its subclasses :class:`FormatError`, :class:`GemmError`, :class:`ArchError`,
:class:`CostError`, :class:`RunError`, :class:`SweepError`, each carrying the library's message.

:mod:`lpsim.qtorch` is a drop-in for QPyTorch (``import qtorch`` -> ``import lpsim.qtorch``) on
these kernels: QPyTorch's values bit for bit, stochastic rounding seeded.
"""

from __future__ import annotations

import difflib
import operator
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import (
    ArchError,
    CostError,
    Format,
    FormatError,
    GemmError,
    LpsimError,
    RunError,
    SweepError,
    formats,
    from_json,
)

__all__ = [
    "ArchError",
    "CostError",
    "Format",
    "FormatError",
    "GemmError",
    "LpsimError",
    "RunError",
    "SweepError",
    "cost",
    "formats",
    "from_json",
    "gemm",
    "quantize",
    "run",
    "sweep",
]

__version__ = "0.1.0"

FormatLike = Union[str, Format]
PathLike = Union[str, "os.PathLike[str]"]


def _spec(format: FormatLike) -> str:
    """The spec string of a format given as a string or a :class:`Format`."""
    if isinstance(format, Format):
        return format.spec
    if isinstance(format, str):
        return format
    raise TypeError(f"format must be a spec string or an lpsim.Format, not {type(format).__name__}")


def quantize(
    x: Any,
    format: FormatLike,
    rounding: str = "rne",
    seed: int = 0,
    *,
    axis: int = -1,
    threads: Optional[int] = None,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Round every element of ``x`` to ``format`` with the rounding unit ``rounding``.

    ``x``: a float32 or float64 NumPy array of any shape and strides (other array-likes are
    converted with ``np.asarray``; integer arrays are refused with ``TypeError``). A C-contiguous
    array in native byte order is read in place, without a copy; any other layout (or a
    byte-swapped array) is copied once into C order first.

    ``format``: a spec (``"bf16"``, ``"e4m3fn"``, ``"fixed:wl=8,fl=6"``, ``"bfp:wl=8,size=32"``,
    ``"mxfp8"``, ...) or a :class:`Format`. ``rounding``: ``rne`` (``nearest``), ``rna``, ``rtz``,
    ``up``, ``down``, ``odd``, ``sr`` (``stochastic``) or ``sr:bits=N``. ``seed`` keys the random
    bits of stochastic rounding: element ``i`` of the C-order flattening draws random word ``i``
    of stream 0, as ``lpsim quantize --seed`` does, so the result is the same for any
    ``threads`` and equals the CLI's on the same array.

    ``axis``: for block formats, the axis the blocks run along (``size=32``: 32 consecutive
    elements along it; ``size=row``: one scale per row along it; ``size=col`` and
    ``size=tensor`` as in the library, with rows of ``x.shape[axis]`` elements). The axis is
    moved last (a copy when it is not already last) and moved back in the result. Scalar formats
    ignore it. For a 1-D or 2-D array with the default ``axis=-1`` the blocks are those of
    ``lpsim quantize`` on the same ``.npy``.

    Returns a new array (float32 when ``x`` is float32 and the format's values are float32
    values, else float64), or ``out`` after writing the result into it (same shape, that dtype,
    not ``x`` itself). Raises :class:`FormatError` for a bad spec or an unsupported rounding.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind == "f" and not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))  # a byte-swapped array: one copy in native order
    spec = _spec(format)
    if x.ndim > 1 and Format(spec).is_block:
        ax = operator.index(axis)
        if not -x.ndim <= ax < x.ndim:
            raise ValueError(f"axis {axis} is out of bounds for an array of dimension {x.ndim}")
        ax %= x.ndim
        if ax != x.ndim - 1:
            moved_out = None if out is None else np.moveaxis(out, ax, -1)
            r = _native.quantize(np.moveaxis(x, ax, -1), spec, rounding, seed, threads, moved_out)
            if out is not None:
                return out
            return np.ascontiguousarray(np.moveaxis(r, -1, ax))
    return _native.quantize(x, spec, rounding, seed, threads, out)


_MAC_KEYS = ("acc", "a_format", "b_format", "product", "fused", "acc_rounding", "order")


def gemm(
    a: Any,
    b: Any,
    mac: Mapping[str, Any],
    *,
    seed: int = 0,
    threads: Optional[int] = None,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """``C = A B`` on an emulated MAC unit, as ``lpsim gemm --a A.npy --b B.npy --out C.npy``.

    ``a`` (M x K) and ``b`` (K x N): 2-D arrays (converted to float64), first rounded to the MAC's
    input formats with nearest-even (block formats: A's blocks along its rows, B's along K).

    ``mac``: a dict describing the MAC unit, with the keys of ``lpsim gemm``: ``acc`` (required:
    the accumulator format, float or fixed), ``a_format`` and ``b_format`` (default ``"fp32"``),
    ``product`` (a format, or ``"exact"``, the default), ``fused`` (default ``False``),
    ``acc_rounding`` (default ``"rne"``) and ``order`` (``"sequential"`` (default),
    ``"pairwise"``, ``"chunk=C"``, ``"native"``). ``seed`` keys stochastic accumulation.

    Returns ``(c, counts)``: C (float32 when the accumulator's values are float32 values, else
    float64) and the hardware actions as a dict (the ``counts`` of ``lpsim gemm --json``: MACs,
    roundings, random bits, overflows, saturations, wraps, ...). Raises :class:`GemmError` for an
    invalid MAC or shapes, :class:`FormatError` for a bad spec.
    """
    if not isinstance(mac, Mapping):
        raise TypeError(f"mac must be a dict, not {type(mac).__name__}")
    for key in mac:
        if key not in _MAC_KEYS:
            close = difflib.get_close_matches(str(key), _MAC_KEYS, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise GemmError(f"mac key `{key}`: unknown{hint}; the keys are {', '.join(_MAC_KEYS)}")
    if "acc" not in mac:
        raise GemmError("mac needs `acc`, the accumulator format (e.g. {'acc': 'fp32'})")
    args = {k: (_spec(v) if isinstance(v, Format) else v) for k, v in mac.items()}
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise GemmError(f"a and b must be 2-D matrices, not {a.ndim}-D and {b.ndim}-D")
    return _native.gemm(a, b, seed=seed, threads=threads, **args)


def cost(
    arch: PathLike,
    gemm: Union[Tuple[int, int, int], Sequence[Tuple[int, int, int]]],
    *,
    set: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Price GEMMs on an architecture, as ``lpsim cost --arch ARCH --gemm M,N,K ... --json``.

    ``arch``: an architecture JSON file. ``gemm``: one ``(m, n, k)`` (C is m x n, the reduction
    is k) or a list of them, run one after another. ``set``: fields of the architecture to
    change, by dotted JSON path (``{"compute.array.rows": 64, "formats.weights": "e4m3fn"}``;
    an ``arch.`` prefix is dropped), checked like the file itself.

    Returns ``{"total": report, "gemms": [{"m", "n", "k", "report"}, ...]}``, each report the
    CLI's (cycles, energy and its breakdown, area, ...). Raises :class:`ArchError` for an invalid
    architecture or override, :class:`CostError` for work it cannot price.
    """
    if len(gemm) == 3 and all(isinstance(d, (int, np.integer)) for d in gemm):
        gemms = [tuple(gemm)]
    else:
        gemms = [tuple(g) for g in gemm]
    for g in gemms:
        if len(g) != 3 or any(not isinstance(d, (int, np.integer)) or d < 1 for d in g):
            raise CostError(f"gemm {g}: expected (m, n, k), three whole numbers >= 1")
    return _native.cost(arch, [tuple(int(d) for d in g) for g in gemms], dict(set or {}))


def run(
    workload: PathLike,
    algo: str,
    arch: PathLike = "arch/fp32.json",
    *,
    seed: int = 0,
    threads: Optional[int] = None,
    out: Optional[PathLike] = None,
    set: Optional[Mapping[str, Any]] = None,
    **overrides: Any,
) -> Dict[str, Any]:
    """One training or sampling run, as ``lpsim run ... --json``: returns its report.

    ``workload`` and ``arch``: JSON files (relative paths against the working directory, as the
    CLI). ``algo``: ``sgd``, ``lp-sgd``, ``sgld``, ``lp-sgld-f``, ``lp-sgld-naive``,
    ``lp-sgld-vc``, ``csgld``, ``lp-csgld-{f,naive,vc}``, ``qsgld``, ``svrg``, ``lp-svrg``,
    ``halp``. ``**overrides``: hyperparameters (``lr=0.1``, ``epochs=3``, ...), as ``--set``;
    ``set``: more overrides by name, for keys that are not Python identifiers
    (``{"arch.formats.weights": "e4m3fn"}``). ``out``: also write ``report.json``,
    ``report.md`` and the plots there. The report is the same for any ``threads``.

    Returns the report as a dict (numeric lists as NumPy arrays; see :func:`from_json`).
    Raises :class:`RunError` (workload, data, algorithm, hyperparameter) or :class:`ArchError`.
    """
    merged: Dict[str, Any] = dict(set or {})
    for k, v in overrides.items():
        if k in merged:
            raise RunError(f"override `{k}` is given twice (keyword and set)")
        merged[k] = v
    return _native.run(workload, algo, arch, seed, merged, threads, out)


def sweep(spec: PathLike, *, out: Optional[PathLike] = None, jobs: int = 0) -> Dict[str, Any]:
    """A grid of runs, as ``lpsim sweep SPEC [--out DIR] [--jobs N]`` (resumable: runs stored in
    ``out`` are reused).

    Writes the CLI's files to ``out`` (default: the spec's ``out``, else ``reports/<name>``) and
    returns ``{"ran", "reused", "failed", "incompatible", "out", "results"}``, ``results`` being
    ``results.json`` as Python objects. Failed runs are counted in ``failed`` rather than raised.
    Raises :class:`SweepError` for an invalid spec.
    """
    return _native.sweep(spec, out, jobs)
