"""QPyTorch's ``qtorch.auto_low``: put a :class:`~lpsim.qtorch.quant.Quantizer` after every layer
of chosen kinds of a model. Needs PyTorch.

``layer_types`` are QPyTorch's names: ``"conv"``, ``"linear"``, ``"pool"``, ``"pad"``,
``"activation"``, ``"normalization"``, ``"dropout"``, ``"loss"`` (the same torch layer classes,
matched by exact type as QPyTorch does). An unknown name is refused up front (QPyTorch asserts
when it first meets a layer).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

from .module import Quantizer
from .number import Number
from .quant import torch

__all__ = ["lower", "sequential_lower"]

_NAMES: Dict[str, Sequence[str]] = {
    "conv": ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
             "ConvTranspose3d", "Unfold", "Fold"],
    "linear": ["Linear", "Bilinear"],
    "pool": ["MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
             "AvgPool1d", "AvgPool2d", "AvgPool3d", "FractionalMaxPool2d", "LPPool1d",
             "LPPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d",
             "AdaptiveAvgPool1d", "AdaptiveMaxPool3d", "AdaptiveAvgPool3d"],
    "pad": ["ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
            "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d"],
    "activation": ["ELU", "Hardshrink", "Hardtanh", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU",
                   "ReLU6", "RReLU", "SELU", "Sigmoid", "Softplus", "Softshrink", "Softsign",
                   "Tanh", "Tanhshrink", "Threshold", "Softmin", "Softmax", "Softmax2d",
                   "LogSoftmax"],
    "normalization": ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm",
                      "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LayerNorm",
                      "LocalResponseNorm"],
    "dropout": ["Dropout", "Dropout2d", "Dropout3d", "AlphaDropout"],
    "loss": ["L1Loss", "MSELoss", "CrossEntropyLoss", "NLLLoss", "PoissonNLLLoss", "KLDivLoss",
             "BCELoss", "BCEWithLogitsLoss", "MarginRankingLoss", "HingeEmbeddingLoss",
             "MultiLabelMarginLoss", "SmoothL1Loss", "SoftMarginLoss",
             "MultiLabelSoftMarginLoss", "MultiMarginLoss", "TripletMarginLoss"],
}


def _layer_classes(layer_types: Sequence[str]) -> List[type]:
    if torch is None:
        raise ImportError("lpsim.qtorch.auto_low rewrites torch models and needs PyTorch "
                          "(pip install torch)")
    if isinstance(layer_types, str):
        raise TypeError(f"layer_types must be a list of names, not the string {layer_types!r}")
    classes: List[type] = []
    for t in layer_types:
        if t not in _NAMES:
            raise ValueError(f"layer type {t!r}: unknown; the types are {', '.join(_NAMES)}")
        classes += [getattr(torch.nn, n) for n in _NAMES[t] if hasattr(torch.nn, n)]
    return classes


def lower(model: Any, layer_types: Sequence[str] = (), forward_number: Optional[Number] = None,
          backward_number: Optional[Number] = None, forward_rounding: str = "stochastic",
          backward_rounding: str = "stochastic") -> None:
    """Quantize, in place, the output of every layer of ``model`` whose type is in
    ``layer_types`` (its ``forward`` is wrapped by one shared ``Quantizer``), as QPyTorch's
    ``lower``. Returns None, as QPyTorch's."""
    classes = _layer_classes(layer_types)
    quant = Quantizer(forward_number, backward_number, forward_rounding, backward_rounding)

    def wrap(module: Any) -> None:
        if type(module) in classes:
            inner = module.forward
            module.forward = lambda *args: quant(inner(*args))

    model.apply(wrap)


def sequential_lower(model: Any, layer_types: Sequence[str] = (),
                     forward_number: Optional[Number] = None,
                     backward_number: Optional[Number] = None,
                     forward_rounding: str = "stochastic",
                     backward_rounding: str = "stochastic") -> Any:
    """A deep copy of ``model`` where every leaf layer whose type is in ``layer_types`` becomes
    ``nn.Sequential(layer, Quantizer(...))`` (one shared ``Quantizer``), as QPyTorch's
    ``sequential_lower``; the model itself is untouched."""
    classes = _layer_classes(layer_types)
    quant = Quantizer(forward_number, backward_number, forward_rounding, backward_rounding)
    nn = torch.nn

    def insert(module: Any) -> Any:
        if type(module) in (nn.Sequential, nn.ModuleList):
            for i in range(len(module)):
                module[i] = insert(module[i])
            return module
        if type(module) is nn.ModuleDict:
            for key in list(module.keys()):
                module[key] = insert(module[key])
            return module
        if len(list(module.children())) != 0:
            for name, child in list(module.named_children()):
                setattr(module, name, insert(child))
            return module
        return nn.Sequential(module, quant) if type(module) in classes else module

    return insert(copy.deepcopy(model))
