"""QPyTorch's ``Quantizer`` module (``qtorch.quant.quant_module``): :func:`quantizer` as a
``torch.nn.Module`` layer. Needs PyTorch; without it, constructing one raises ``ImportError``."""

from __future__ import annotations

from typing import Any, Optional

from .number import Number
from .quant import quantizer, torch

__all__ = ["Quantizer"]

if torch is not None:

    class Quantizer(torch.nn.Module):
        """A layer whose forward rounds its input to ``forward_number`` and whose backward
        rounds the gradient to ``backward_number`` (QPyTorch's ``Quantizer``, same arguments
        and defaults)."""

        def __init__(self, forward_number: Optional[Number] = None,
                     backward_number: Optional[Number] = None,
                     forward_rounding: str = "stochastic",
                     backward_rounding: str = "stochastic") -> None:
            super().__init__()
            self.quantize = quantizer(forward_number, backward_number, forward_rounding,
                                      backward_rounding)

        def forward(self, x: Any) -> Any:
            return self.quantize(x)

else:

    class Quantizer:  # type: ignore[no-redef]
        """QPyTorch's ``Quantizer`` layer; needs PyTorch."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("lpsim.qtorch.quant.Quantizer is a torch.nn.Module and needs "
                              "PyTorch (pip install torch); the quantize functions work on NumPy "
                              "arrays without it")
