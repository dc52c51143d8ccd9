"""QPyTorch's quantization functions (``qtorch.quant``) on lpsim's kernels: ``float_quantize``,
``fixed_point_quantize``, ``block_quantize``, ``quantizer`` and the ``Quantizer`` module.

Same signatures, defaults and "nearest" values as QPyTorch 0.3.0 (bit for bit: lpsim's
``qtorch:``, ``qfixed:`` and ``qbfp:`` formats follow its CPU kernels). They take float32 (or
float64) CPU ``torch.Tensor``\\ s, read in place through ``Tensor.numpy()`` and returned as a new
tensor wrapping lpsim's output array (``torch.from_numpy``, no copy), or NumPy arrays, which need
no torch at all. CUDA tensors are refused.

Stochastic rounding draws lpsim's counter-based random words instead of QPyTorch's unseeded
``std::mt19937``: the same distribution (QPyTorch's rules: uniform random bits added below the kept bits of
the float32 pattern for float and block, a uniform offset before rounding down for fixed
point), and reproducible. Each stochastic call takes a fresh seed from a
module-level generator: ``seed_k = splitmix64(s + (k + 1) * 0x9E3779B97F4A7C15)`` for the
``k``-th stochastic call since :func:`manual_seed` ``(s)`` (``s = 0`` at import). So a script
gives the same bits on every run given its seed and its sequence of calls, with any number of
threads; ``seed=`` on a call uses that seed instead and leaves the counter alone.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Optional, Tuple

import numpy as np

from .. import quantize as _quantize
from .number import BlockFloatingPoint, FixedPoint, FloatingPoint, Number

try:  # torch is optional: NumPy arrays work without it
    import torch
except ImportError:  # pragma: no cover - exercised in the torch-free CI
    torch = None

__all__ = [
    "fixed_point_quantize",
    "block_quantize",
    "float_quantize",
    "quantizer",
    "Quantizer",
    "manual_seed",
    "get_rng_state",
    "set_rng_state",
]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_lock = threading.Lock()
_rng = {"seed": 0, "calls": 0}


def _splitmix64(z: int) -> int:
    """SplitMix64's output function (Steele et al. 2014): a bijective mix of a 64-bit word."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _seed_arg(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, not {type(seed).__name__} ({seed!r})")
    if not 0 <= int(seed) <= _MASK64:
        raise ValueError(f"seed {seed} is out of range: 0..2^64-1")
    return int(seed)


def manual_seed(seed: int) -> None:
    """Seed stochastic rounding (like ``torch.manual_seed``, which QPyTorch's CPU kernels ignore):
    the following stochastic calls draw the words of ``seed``'s sequence, call after call."""
    s = _seed_arg(seed)
    with _lock:
        _rng["seed"], _rng["calls"] = s, 0


def get_rng_state() -> Tuple[int, int]:
    """``(seed, calls)``: the seed and how many stochastic calls drew from it so far."""
    with _lock:
        return _rng["seed"], _rng["calls"]


def set_rng_state(state: Tuple[int, int]) -> None:
    """Restore a state from :func:`get_rng_state` (e.g. when resuming from a checkpoint)."""
    seed, calls = state
    s, c = _seed_arg(seed), _seed_arg(calls)
    with _lock:
        _rng["seed"], _rng["calls"] = s, c


def _next_seed() -> int:
    with _lock:
        k = _rng["calls"]
        _rng["calls"] = k + 1
        return _splitmix64(_rng["seed"] + (k + 1) * _GOLDEN)


def _mode(rounding: object, nearest: str) -> str:
    if rounding == "nearest":
        return nearest
    if rounding == "stochastic":
        return "sr"
    raise ValueError(f'invalid rounding mode {rounding!r}: "stochastic" or "nearest"')


def _is_tensor(x: object) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _as_array(x: Any, fn: str) -> Tuple[np.ndarray, bool]:
    """``(array, was_tensor)``: a CPU tensor's memory as a NumPy array (no copy), or ``x``."""
    if _is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{fn}: x is on device `{x.device}`; lpsim.qtorch quantizes CPU tensors "
                             "only (move it with .cpu())")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{fn}: x has dtype {x.dtype}; expected torch.float32 (or float64)")
        return x.detach().numpy(), True
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{fn}: x has dtype {x.dtype}; expected float32 (or float64)")
        return x, False
    raise TypeError(f"{fn}: x must be a torch.Tensor or a NumPy array, not {type(x).__name__}")


def _run(x: Any, fn: str, spec: str, nearest: str, rounding: object, seed: Optional[int],
         threads: Optional[int], dim: Optional[int] = None) -> Any:
    mode = _mode(rounding, nearest)
    a, tensor = _as_array(x, fn)
    s = 0 if mode != "sr" else (_next_seed() if seed is None else _seed_arg(seed))
    if dim is None:
        q = _quantize(a, spec, mode, s, threads=threads)
    else:
        q = _blocks(a, spec, dim, mode, s, threads, fn)
    return torch.from_numpy(q) if tensor else q


def _blocks(a: np.ndarray, wl_spec: str, dim: int, mode: str, seed: int,
            threads: Optional[int], fn: str) -> np.ndarray:
    """QPyTorch's blocks: ``dim = -1`` one block for the tensor; else one per index along
    ``dim`` (the tensor transposed to put ``dim`` first, viewed as ``[D, -1]``)."""
    if dim == -1:
        q = _quantize(a.reshape(-1), wl_spec + ",size=tensor", mode, seed, threads=threads)
        return q.reshape(a.shape)
    if not -a.ndim <= dim < a.ndim:
        raise ValueError(f"{fn}: dim {dim} is out of range for a tensor of {a.ndim} dimensions")
    d = dim % a.ndim
    if a.size == 0:
        return a.copy()
    moved = np.moveaxis(a, d, 0)
    q = _quantize(moved.reshape(moved.shape[0], -1), wl_spec + ",size=row", mode, seed,
                  threads=threads)
    q = q.reshape(moved.shape)
    return q if d == 0 else np.ascontiguousarray(np.moveaxis(q, 0, d))


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    return int(value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} ({value!r})")
    return bool(value)


def float_quantize(x: Any, exp: int, man: int, rounding: str = "stochastic", *,
                   seed: Optional[int] = None, threads: Optional[int] = None) -> Any:
    """Round ``x`` to the floating point format with ``exp`` exponent and ``man`` mantissa bits,
    as QPyTorch's ``float_quantize`` (lpsim ``qtorch:e=EXP,m=MAN``; "nearest" ties away from
    zero, as QPyTorch's bit arithmetic). ``exp`` 2..8, ``man`` 0..22 (not 0 with ``exp = 8``).
    ``seed`` (stochastic only): this call's seed instead of the module's sequence. ``threads``:
    lpsim's thread pool (the result does not depend on it)."""
    spec = f"qtorch:e={_int('exp', exp)},m={_int('man', man)}"
    return _run(x, "float_quantize", spec, "rna", rounding, seed, threads)


def fixed_point_quantize(x: Any, wl: int, fl: int, clamp: bool = True, symmetric: bool = False,
                         rounding: str = "stochastic", *, seed: Optional[int] = None,
                         threads: Optional[int] = None) -> Any:
    """Round ``x`` to fixed point with word length ``wl`` and ``fl`` fraction bits, as
    QPyTorch's ``fixed_point_quantize`` (lpsim ``qfixed:``; "nearest" ties to even, with
    QPyTorch's float32 arithmetic). ``clamp``: limit to the range (else only the grid);
    ``symmetric``: drop the most negative value. ``seed``, ``threads``: as
    :func:`float_quantize`."""
    spec = FixedPoint(_int("wl", wl), _int("fl", fl), _bool("clamp", clamp),
                      _bool("symmetric", symmetric)).spec()
    return _run(x, "fixed_point_quantize", spec, "rne", rounding, seed, threads)


def block_quantize(x: Any, wl: int, dim: int = -1, rounding: str = "stochastic", *,
                   seed: Optional[int] = None, threads: Optional[int] = None) -> Any:
    """Round ``x`` to block floating point with ``wl``-bit elements (2..22), as QPyTorch's
    ``block_quantize``: ``dim = -1`` shares one exponent over the whole tensor, ``dim = d`` one
    per index along axis ``d`` (lpsim ``qbfp:``; "nearest" as QPyTorch's offset arithmetic).
    ``seed``, ``threads``: as :func:`float_quantize`."""
    wl, dim = _int("wl", wl), _int("dim", dim)
    spec = f"qbfp:wl={wl}"
    return _run(x, "block_quantize", spec, "rna", rounding, seed, threads, dim=dim)


def _number_quant(number: Optional[Number], rounding: str, what: str) -> Optional[Callable]:
    """The quantizing function of ``number`` with ``rounding`` (None: identity)."""
    _mode(rounding, "rne")
    if number is None:
        return None
    if isinstance(number, FloatingPoint):
        return lambda t: float_quantize(t, number.exp, number.man, rounding)
    if isinstance(number, FixedPoint):
        return lambda t: fixed_point_quantize(t, number.wl, number.fl, number.clamp,
                                              number.symmetric, rounding)
    if isinstance(number, BlockFloatingPoint):
        return lambda t: block_quantize(t, number.wl, number.dim, rounding)
    raise TypeError(f"{what} must be a FixedPoint, FloatingPoint, BlockFloatingPoint or None, "
                    f"not {type(number).__name__}")


def _clamp_mask_quant(n: FixedPoint, rounding: str) -> Callable[[Any], Tuple[Any, Any]]:
    """QPyTorch's ``fixed_point_quantize_*_mask``: the clamped result and where it clamped. The
    unclamped and clamped roundings share one seed, so they draw the same words; an element was
    clamped exactly where the two differ."""

    def run(x: Any) -> Tuple[Any, Any]:
        seed = _next_seed() if rounding == "stochastic" else 0
        free = fixed_point_quantize(x, n.wl, n.fl, False, n.symmetric, rounding, seed=seed)
        out = fixed_point_quantize(x, n.wl, n.fl, True, n.symmetric, rounding, seed=seed)
        return out, (free != out) & (free == free)

    return run


def quantizer(
    forward_number: Optional[Number] = None,
    backward_number: Optional[Number] = None,
    forward_rounding: str = "stochastic",
    backward_rounding: str = "stochastic",
    clamping_grad_zero: bool = False,
    backward_hooks: Iterable[Callable] = (),
) -> Callable[[Any], Any]:
    """A quantization function as QPyTorch's ``quantizer``: the forward pass rounds to
    ``forward_number``, the backward pass rounds the incoming gradient to ``backward_number``
    (``None``: identity). With torch, tensors go through a ``torch.autograd.Function``;
    NumPy arrays get the forward rounding only.

    ``clamping_grad_zero`` (``forward_number`` a clamped ``FixedPoint``, or None): the gradient
    of elements the forward pass clamped is zeroed. ``backward_hooks``: functions applied to the
    gradient, in order, before its rounding.

    Two deliberate differences from QPyTorch 0.3.0, where it ignores a field the user set:
    QPyTorch applies ``backward_hooks`` and the clamping mask only when ``clamping_grad_zero``
    is set and ``backward_number`` is not None; lpsim applies the hooks always and the mask
    whenever ``clamping_grad_zero`` is set. With the fields QPyTorch honours, the values are
    QPyTorch's (nearest bit for bit).
    """
    fwd = _number_quant(forward_number, forward_rounding, "forward_number")
    bwd = _number_quant(backward_number, backward_rounding, "backward_number")
    clamping_grad_zero = _bool("clamping_grad_zero", clamping_grad_zero)
    hooks = list(backward_hooks)
    for h in hooks:
        if not callable(h):
            raise TypeError(f"backward_hooks: {h!r} is not callable")
    masked: Optional[Callable] = None
    if clamping_grad_zero and forward_number is not None:
        if not isinstance(forward_number, FixedPoint):
            raise ValueError("clamping_grad_zero: zeroing the gradient of clamped values needs "
                             f"a FixedPoint forward_number, not {forward_number!r}")
        if not forward_number.clamp:
            raise ValueError("clamping_grad_zero: the forward FixedPoint must clamp (clamp=True)")
        masked = _clamp_mask_quant(forward_number, forward_rounding)

    def forward_np(x: Any) -> Any:
        return x if fwd is None else fwd(x)

    if torch is None:
        return forward_np

    class Rounding(torch.autograd.Function):
        """QPyTorch's ``Rounding``: quantize forward, quantize the gradient backward."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            if masked is not None:
                out, mask = masked(x)
                ctx.mask = mask
                return out
            ctx.mask = None
            return forward_np(x)

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            if not ctx.needs_input_grad[0]:
                return None
            g = grad_output
            for h in hooks:
                g = h(g)
            if bwd is not None:
                g = bwd(g.contiguous())
            if ctx.mask is not None:
                g = g.masked_fill(ctx.mask, 0)
            return g

    def apply(x: Any) -> Any:
        return Rounding.apply(x) if _is_tensor(x) else forward_np(x)

    return apply


# QPyTorch's ``qtorch.quant`` also exports the module; imported last (module.py uses quantizer).
from .module import Quantizer  # noqa: E402
