"""QPyTorch's ``OptimLP`` (``qtorch.optim``): a torch optimizer wrapped to quantize gradients,
weights, momenta and weight accumulators around each step. Needs PyTorch."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .quant import torch

__all__ = ["OptimLP"]

Quant = Optional[Callable[[Any], Any]]

if torch is not None:

    class OptimLP(torch.optim.Optimizer):
        """A low-precision wrapper of a ``torch.optim.SGD`` or ``Adam`` optimizer, step for step
        QPyTorch 0.3.0's ``OptimLP``. ``step()``:

        1. each gradient becomes ``grad_quant(grad * grad_scaling)``;
        2. with ``acc_quant``, the parameters are swapped for their full-copy accumulators;
        3. the wrapped optimizer steps;
        4. with ``acc_quant``, the accumulators become ``acc_quant(param)`` and the parameters
           them;
        5. the parameters become ``weight_quant(param)``;
        6. the optimizer's momenta (SGD ``momentum_buffer``; Adam ``exp_avg``, ``exp_avg_sq``)
           become ``momentum_quant(m)`` (skipped for SGD without momentum and for parameters
           without a gradient).

        Each ``*_quant`` is a function tensor -> tensor (e.g. from :func:`quantizer`), or None
        for no quantization.
        """

        def __init__(self, optim: Any, weight_quant: Quant = None, grad_scaling: float = 1.0,
                     grad_quant: Quant = None, momentum_quant: Quant = None,
                     acc_quant: Quant = None) -> None:
            if not isinstance(optim, (torch.optim.SGD, torch.optim.Adam)):
                raise TypeError("OptimLP wraps a torch.optim.SGD or torch.optim.Adam optimizer "
                                f"(as QPyTorch's), not {type(optim).__name__}")
            if not grad_scaling > 0:
                raise ValueError(f"OptimLP: gradient scaling must be positive, not {grad_scaling}")
            for name, f in (("weight_quant", weight_quant), ("grad_quant", grad_quant),
                            ("momentum_quant", momentum_quant), ("acc_quant", acc_quant)):
                if f is not None and not callable(f):
                    raise TypeError(f"OptimLP: {name} must be a function or None, not {f!r}")
            super().__init__(optim.param_groups, optim.defaults)
            self.param_groups = optim.param_groups  # shared with the wrapped optimizer
            self.optim = optim
            self.grad_scaling = grad_scaling
            self.weight_quant = weight_quant
            self.grad_quant = grad_quant
            self.momentum_quant = momentum_quant
            self.acc_quant = acc_quant
            if isinstance(optim, torch.optim.SGD):
                self.momentum_keys = ["momentum_buffer"]
            else:
                self.momentum_keys = ["exp_avg", "exp_avg_sq"]
            if acc_quant is not None:
                self.weight_acc = {p: p.detach().clone()
                                   for group in self.param_groups for p in group["params"]}

        def _params(self, with_grad: bool = False):
            for group in self.param_groups:
                for p in group["params"]:
                    if not with_grad or p.grad is not None:
                        yield p

        def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
            """One step of the wrapped optimizer with the quantizations above (``closure`` is
            accepted for the Optimizer interface and, as in QPyTorch, not used)."""
            if self.grad_quant is not None:
                for p in self._params(with_grad=True):  # a missing gradient counts as zero
                    p.grad.data = self.grad_quant(p.grad.data * self.grad_scaling)
            if self.acc_quant is not None:
                for p in self._params():
                    p.data = self.weight_acc[p].data
            loss = self.optim.step()
            if self.acc_quant is not None:
                for p in self._params():
                    p.data = self.weight_acc[p].data = self.acc_quant(p.data).data
            if self.weight_quant is not None:
                for p in self._params():
                    p.data = self.weight_quant(p.data).data
            if self.momentum_quant is not None:
                for group in self.param_groups:
                    if isinstance(self.optim, torch.optim.SGD) and group["momentum"] == 0:
                        continue
                    for p in group["params"]:
                        if p.grad is None:
                            continue
                        state = self.optim.state[p]
                        for key in self.momentum_keys:
                            state[key] = self.momentum_quant(state[key])
            return loss

        def __repr__(self) -> str:
            return "LP Optimizer: {}".format(repr(self.optim))

        def __str__(self) -> str:
            return "LP Optimizer: {}".format(str(self.optim))

else:

    class OptimLP:  # type: ignore[no-redef]
        """QPyTorch's low-precision optimizer wrapper; needs PyTorch."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("lpsim.qtorch.optim.OptimLP wraps a torch optimizer and needs "
                              "PyTorch (pip install torch)")
