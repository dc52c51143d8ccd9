"""Type stubs of the lpsim package (docstrings: lpsim/__init__.py and the native module)."""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]
FormatLike = Union[str, "Format"]

class LpsimError(ValueError):
    """Base class of every error lpsim raises; its message is the library's."""

class FormatError(LpsimError):
    """A format or rounding spec that does not parse, or a format that cannot do what is asked."""

class GemmError(LpsimError):
    """A MAC configuration or GEMM operands that the emulated GEMM refuses."""

class ArchError(LpsimError):
    """An architecture file or an override of it that does not validate."""

class CostError(LpsimError):
    """Work that cannot be priced on an architecture."""

class RunError(LpsimError):
    """A run that cannot be prepared or fails (workload, data, algorithm, hyperparameters)."""

class SweepError(LpsimError):
    """A sweep spec that does not validate, or a sweep that cannot write its results."""

class Format:
    """A number format parsed from a spec string; raises FormatError on a bad spec."""

    def __init__(self, spec: str) -> None: ...
    @property
    def spec(self) -> str:
        """The canonical spec string (parses back to the same format)."""
    @property
    def kind(self) -> str:
        """The family: "float", "fixed", "bfp", "mx" or "qtorch"."""
    @property
    def bits(self) -> int:
        """Bits per element (block formats: the element's, without the shared 8-bit scale)."""
    @property
    def is_block(self) -> bool:
        """Whether one shared scale covers a block of elements (bfp, MX)."""
    @property
    def fits_f32(self) -> bool:
        """Whether every value is a float32 value."""
    def info(self) -> Dict[str, Any]:
        """The facts of `lpsim formats` as a dict."""
    def encode(self, values: npt.ArrayLike) -> npt.NDArray[np.unsignedinteger[Any]]:
        """Bit patterns of values (rounded to nearest-even first); scalar formats only."""
    def decode(self, codes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Values (float64) of bit patterns; scalar formats only."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def formats() -> List[Dict[str, Any]]:
    """The built-in formats as the rows of `lpsim formats --json`."""

def from_json(text: str) -> Any:
    """JSON text (a CLI report) as the Python objects lpsim's functions return."""

def quantize(
    x: npt.ArrayLike,
    format: FormatLike,
    rounding: str = "rne",
    seed: int = 0,
    *,
    axis: int = -1,
    threads: Optional[int] = None,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Round every element of x to format with rounding (bit-equal to `lpsim quantize`)."""

def gemm(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    mac: Mapping[str, Any],
    *,
    seed: int = 0,
    threads: Optional[int] = None,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """C = A B on an emulated MAC unit: returns (c, counts)."""

def cost(
    arch: PathLike,
    gemm: Union[Tuple[int, int, int], Sequence[Tuple[int, int, int]]],
    *,
    set: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Price GEMMs on an architecture, as `lpsim cost --json`."""

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
    """One training or sampling run, as `lpsim run --json`."""

def sweep(spec: PathLike, *, out: Optional[PathLike] = None, jobs: int = 0) -> Dict[str, Any]:
    """A grid of runs, as `lpsim sweep`; returns the counts and results.json."""
