"""QPyTorch's number formats (``qtorch.number``), each mapped to the lpsim spec that reproduces
QPyTorch 0.3.0's CPU kernels bit for bit (see docs/formats.md, "QPyTorch compatibility").

Same constructors, defaults and attributes as QPyTorch's; the checks raise ``TypeError`` or
``lpsim.FormatError`` (a ``ValueError``; QPyTorch uses ``assert``), at construction. One deliberate difference: :class:`FixedPoint` accepts
any whole ``fl`` (zero, negative, above ``wl``), as QPyTorch's own ``fixed_point_quantize``
does, where QPyTorch's class asserts ``fl > 0``.
"""

from __future__ import annotations

from .._native import Format, FormatError

__all__ = ["Number", "FixedPoint", "BlockFloatingPoint", "FloatingPoint"]


def _whole(name: str, value: object) -> int:
    """``value`` as an int; a bool, float or other type is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    return int(value)


def _checked(number: "Number", spec: str) -> None:
    """Refuse at construction what lpsim cannot quantize, with the library's reason."""
    try:
        Format(spec)
    except FormatError as e:
        raise FormatError(f"{number!r}: {e}") from None


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} ({value!r})")
    return value


class Number:
    """Base class of the number formats (QPyTorch's ``qtorch.Number``)."""

    def spec(self) -> str:
        """The lpsim format spec with this number's values (e.g. ``"qtorch:e=8,m=7"``)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return repr(self)


class FixedPoint(Number):
    """Fixed point with word length ``wl`` and ``fl`` fraction bits (grid ``2^-fl``, range
    ``[-2^(wl-fl-1), 2^(wl-fl-1) - 2^-fl]``); ``clamp`` limits values to the range, and
    ``symmetric`` drops the most negative value. lpsim spec
    ``qfixed:wl=WL,fl=FL,clamp=on|off,symmetric=on|off``; "nearest" is ``rne``.
    """

    def __init__(self, wl: int, fl: int, clamp: bool = True, symmetric: bool = False) -> None:
        self.wl = _whole("wl", wl)
        self.fl = _whole("fl", fl)
        if self.wl <= 0:
            raise FormatError(f"FixedPoint: invalid word length wl={wl} (must be >= 1)")
        self.clamp = _flag("clamp", clamp)
        self.symmetric = _flag("symmetric", symmetric)
        _checked(self, self.spec())

    def spec(self) -> str:
        on = {True: "on", False: "off"}
        return (f"qfixed:wl={self.wl},fl={self.fl},clamp={on[self.clamp]},"
                f"symmetric={on[self.symmetric]}")

    def __repr__(self) -> str:
        return "FixedPoint (wl={:d}, fl={:d})".format(self.wl, self.fl)


class FloatingPoint(Number):
    """Floating point with ``exp`` exponent bits (2..8) and ``man`` stored mantissa bits (1..22),
    QPyTorch's layout (bias ``2^(exp-1) - 1``, no reserved exponent code, saturating below
    ``exp = 8``). lpsim spec ``qtorch:e=EXP,m=MAN``; "nearest" is ``rna`` (ties away from zero,
    as QPyTorch's bit arithmetic). ``exp = 1`` and ``man = 23``, which QPyTorch's class accepts,
    are refused (undefined shifts in QPyTorch's kernel; see docs/formats.md).
    """

    def __init__(self, exp: int, man: int) -> None:
        self.exp = _whole("exp", exp)
        self.man = _whole("man", man)
        if self.man <= 0:  # QPyTorch's class refuses man = 0 (its function allows it)
            raise FormatError(f"FloatingPoint: invalid bits for mantissa: man={man} (1..22)")
        if self.man == 23:
            raise FormatError(
                f"FloatingPoint(exp={exp}, man=23): refused: QPyTorch's kernel shifts by -1 there "
                "(its \"nearest\" flips the sign of every value, its \"stochastic\" is the "
                "identity); for no quantization pass None as the number")
        _checked(self, self.spec())

    def spec(self) -> str:
        return f"qtorch:e={self.exp},m={self.man}"

    def __repr__(self) -> str:
        return "FloatingPoint (exponent={:d}, mantissa={:d})".format(self.exp, self.man)


class BlockFloatingPoint(Number):
    """Block floating point: ``wl``-bit elements sharing one exponent per block, the exponent of
    the block's largest magnitude. ``dim = -1``: the whole tensor is one block; ``dim = d``: one
    block per index along axis ``d`` (``D`` exponents for a dimension of size ``D``). lpsim spec
    ``qbfp:wl=WL,size=tensor`` or ``size=row`` on the tensor viewed as ``[D, -1]``; "nearest" is
    ``rna``.
    """

    def __init__(self, wl: int, dim: int = -1) -> None:
        self.wl = _whole("wl", wl)
        self.dim = _whole("dim", dim)
        if self.wl <= 0:
            raise FormatError(f"BlockFloatingPoint: invalid bits for word length: wl={wl}")
        if self.dim < -1:
            raise FormatError(f"BlockFloatingPoint: invalid dimension dim={dim} (-1 or an axis >= 0)")
        _checked(self, self.spec())

    def spec(self) -> str:
        """``size=tensor`` for ``dim = -1``, else ``size=row`` (applied to the tensor with axis
        ``dim`` moved first and viewed as ``[D, -1]``)."""
        return f"qbfp:wl={self.wl},size={'tensor' if self.dim == -1 else 'row'}"

    def __repr__(self) -> str:
        return "BlockFloatingPoint (wl={:d}, dim={:d})".format(self.wl, self.dim)
