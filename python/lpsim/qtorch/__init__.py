"""A drop-in for QPyTorch (``qtorch`` 0.3.0) on lpsim's kernels.

Change ``qtorch`` to ``lpsim.qtorch`` in the imports and a QPyTorch script runs unchanged::

    from lpsim.qtorch import FixedPoint, FloatingPoint, BlockFloatingPoint   # was: from qtorch
    from lpsim.qtorch.quant import quantizer, Quantizer, float_quantize       # was: qtorch.quant
    from lpsim.qtorch.optim import OptimLP                                    # was: qtorch.optim
    from lpsim.qtorch.auto_low import sequential_lower                        # was: qtorch.auto_low

"nearest" rounding gives QPyTorch's values bit for bit; "stochastic" rounding has QPyTorch's
distribution and, unlike QPyTorch, is reproducible: :func:`manual_seed` seeds it (see
:mod:`lpsim.qtorch.quant`). Tensors are CPU float32 ``torch.Tensor``\\ s (read and returned
without copies) or, without torch installed, NumPy arrays; ``quantizer``'s autograd function,
``Quantizer``, ``OptimLP`` and ``auto_low`` need torch.
"""

from . import quant  # first: it imports module.py, which uses quant's quantizer
from . import auto_low, number, optim
from .number import BlockFloatingPoint, FixedPoint, FloatingPoint, Number
from .quant import get_rng_state, manual_seed, set_rng_state

__all__ = ["Number", "FixedPoint", "BlockFloatingPoint", "FloatingPoint", "manual_seed",
           "get_rng_state", "set_rng_state", "number", "quant", "optim", "auto_low"]
