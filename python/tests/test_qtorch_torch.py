"""lpsim.qtorch with PyTorch tensors (skipped when torch is not installed; CI does not install
it) and, where QPyTorch 0.3.0 is importable too, side by side with the real QPyTorch: tensors in
and out without copies, autograd semantics of ``quantizer``, ``Quantizer`` layers, and
``OptimLP`` training steps giving QPyTorch's weights bit for bit with nearest rounding."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lpsim.qtorch as lq  # noqa: E402
import lpsim.qtorch.quant as lquant  # noqa: E402
from lpsim.qtorch import BlockFloatingPoint, FixedPoint, FloatingPoint  # noqa: E402
from lpsim.qtorch.optim import OptimLP  # noqa: E402
from lpsim.qtorch.quant import (Quantizer, block_quantize, fixed_point_quantize,  # noqa: E402
                                float_quantize, quantizer)


def real_qtorch():
    """QPyTorch itself (it compiles its C++ extension at import; needs ninja), or skip."""
    try:
        import qtorch
        import qtorch.optim
        import qtorch.quant
    except Exception as e:  # ImportError, or the extension's build failing
        pytest.skip(f"QPyTorch not usable: {e}")
    return qtorch


def numbers(mod):
    """The same numbers built from QPyTorch's classes or lpsim's."""
    return [mod.FloatingPoint(5, 2), mod.FloatingPoint(8, 7), mod.FixedPoint(8, 4),
            mod.FixedPoint(6, 3, clamp=True, symmetric=True), mod.BlockFloatingPoint(6, 0),
            mod.BlockFloatingPoint(8, -1)]


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 2


def test_tensors_in_and_out_without_copies(monkeypatch):
    """The tensor's own memory goes to lpsim (Tensor.numpy()), and the result tensor wraps
    lpsim's output array (torch.from_numpy)."""
    seen = {}
    real = lquant._quantize

    def spy(a, *args, **kwargs):
        out = real(a, *args, **kwargs)
        seen["in"], seen["out"] = a, out
        return out

    monkeypatch.setattr(lquant, "_quantize", spy)
    x = randn(64, 33).requires_grad_()
    for fn in (lambda t: float_quantize(t, 5, 2), lambda t: fixed_point_quantize(t, 8, 4),
               lambda t: block_quantize(t, 8, 0), lambda t: block_quantize(t, 8, -1)):
        y = fn(x)
        assert seen["in"].ctypes.data == x.data_ptr()
        assert seen["out"].ctypes.data == y.data_ptr()
        assert y.dtype == torch.float32 and y.shape == x.shape and y.is_contiguous()
        assert not y.requires_grad  # as QPyTorch's kernels: no graph through the functions


def test_dtypes_layouts_and_devices():
    x = randn(5, 7)
    want = float_quantize(x, 5, 2, "nearest")
    assert torch.equal(float_quantize(x.double(), 5, 2, "nearest"), want.double())
    assert float_quantize(x.double(), 5, 2, "nearest").dtype == torch.float64
    t = x.t()  # not contiguous: the values of its contiguous copy, as QPyTorch's .contiguous()
    assert torch.equal(float_quantize(t, 5, 2, "nearest"), float_quantize(t.contiguous(), 5, 2, "nearest"))
    assert np.array_equal(float_quantize(x.numpy(), 5, 2, "nearest"), want.numpy())
    with pytest.raises(ValueError, match="device `meta`.*CPU tensors only"):
        float_quantize(torch.empty(3, device="meta"), 5, 2)
    with pytest.raises(TypeError, match="torch.bfloat16"):
        fixed_point_quantize(x.bfloat16(), 8, 4)
    with pytest.raises(TypeError, match="torch.int64"):
        block_quantize(torch.arange(4), 8)


def test_functions_equal_qtorch_nearest():
    real_qtorch()
    from qtorch.quant import block_quantize as B, fixed_point_quantize as X, float_quantize as F
    x = randn(3, 4, 50, seed=1)
    x.view(-1)[:6] = torch.tensor([0.0, -0.0, float("inf"), float("nan"), 1e-40, 3e38])
    for e, m in [(8, 7), (5, 2), (4, 3), (3, 0)]:
        assert torch.equal(float_quantize(x, e, m, "nearest").view(torch.int32),
                           F(x, e, m, "nearest").view(torch.int32)), (e, m)
    for wl, fl, c, s in [(8, 4, True, False), (8, 4, False, True), (16, 12, True, True)]:
        assert torch.equal(fixed_point_quantize(x, wl, fl, c, s, "nearest").view(torch.int32),
                           X(x, wl, fl, c, s, "nearest").view(torch.int32)), (wl, fl, c, s)
    for dim in (-1, 0, 1, 2):
        got = block_quantize(x, 8, dim, "nearest")
        assert torch.equal(got.view(torch.int32), B(x, 8, dim, "nearest").view(torch.int32)), dim


def grads(q, x, g):
    """y = q(x) and the gradient reaching x from grad_output g."""
    x = x.clone().requires_grad_()
    y = q(x)
    y.backward(g)
    return y.detach(), x.grad


@pytest.mark.parametrize("fi", range(6))
@pytest.mark.parametrize("bi", [None, *range(6)])
def test_quantizer_forward_backward_equal_qtorch(fi, bi):
    qt = real_qtorch()
    ours, theirs = numbers(lq), numbers(qt)
    x, g = randn(8, 16, seed=2), randn(8, 16, seed=3)
    a = quantizer(ours[fi], None if bi is None else ours[bi], "nearest", "nearest")
    b = qt.quant.quantizer(theirs[fi], None if bi is None else theirs[bi], "nearest", "nearest")
    ya, ga = grads(a, x, g)
    yb, gb = grads(b, x, g)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)
    if bi is None:
        assert torch.equal(ga, g)  # no backward number: the gradient passes unchanged


def test_quantizer_clamping_grad_zero_and_hooks_equal_qtorch():
    qt = real_qtorch()
    x, g = randn(8, 16, seed=4) * 4, randn(8, 16, seed=5)
    hooks = [lambda t: t * 4, lambda t: t - 0.25]
    a = quantizer(lq.FixedPoint(6, 3), lq.FixedPoint(8, 4), "nearest", "nearest",
                  clamping_grad_zero=True, backward_hooks=hooks)
    b = qt.quant.quantizer(qt.FixedPoint(6, 3), qt.FixedPoint(8, 4), "nearest", "nearest",
                           clamping_grad_zero=True, backward_hooks=hooks)
    ya, ga = grads(a, x, g)
    yb, gb = grads(b, x, g)
    clamped = (x < -4) | (x > 4 - 0.125 + 0.0625)
    assert clamped.any() and (~clamped).any()
    assert torch.equal(ya, yb) and torch.equal(ga, gb)
    assert torch.all(ga[clamped] == 0)
    want = fixed_point_quantize((g * 4 - 0.25), 8, 4, rounding="nearest")
    assert torch.equal(ga[~clamped], want[~clamped])


def test_quantizer_applies_hooks_and_mask_where_qtorch_ignores_them():
    """The two documented deviations: hooks without clamping_grad_zero, and the mask with no
    backward number (QPyTorch 0.3.0 ignores both fields there)."""
    x, g = randn(6, 10, seed=6) * 4, randn(6, 10, seed=7)
    q = quantizer(lq.FloatingPoint(5, 2), lq.FixedPoint(8, 4), "nearest", "nearest",
                  backward_hooks=[lambda t: t * 8])
    _, gx = grads(q, x, g)
    assert torch.equal(gx, fixed_point_quantize(g * 8, 8, 4, rounding="nearest"))
    q = quantizer(lq.FixedPoint(6, 3), None, "nearest", clamping_grad_zero=True)
    y, gx = grads(q, x, g)
    clamped = y != fixed_point_quantize(x, 6, 3, clamp=False, rounding="nearest")
    assert clamped.any()
    assert torch.equal(gx, g.masked_fill(clamped, 0))


def test_stochastic_clamping_mask_marks_exactly_the_clamped_elements():
    """FixedPoint(6, 3): range [-4, 3.875], grid 0.125. With stochastic rounding an input within
    one step outside the range may round back into it (not clamped) or past it (clamped); an
    input a whole step beyond always clamps, one inside never does."""
    lq.manual_seed(3)
    x, g = randn(60, 60, seed=8) * 4, torch.ones(60, 60)
    q = quantizer(lq.FixedPoint(6, 3), lq.FixedPoint(8, 4), clamping_grad_zero=True)
    y, gx = grads(q, x, g)
    mask = gx == 0
    assert torch.all(mask[(x >= 4) | (x <= -4.125)])
    assert not torch.any(mask[(x >= -4) & (x <= 3.875)])
    edge = ((x > 3.875) & (x < 4)) | ((x > -4.125) & (x < -4))
    assert mask[edge].any() and (~mask[edge]).any()
    assert torch.all((y == -4) | (y == 3.875) | ~mask)
    assert torch.all(gx[~mask] == 1)


def test_quantizer_skips_inputs_without_grad_and_is_seeded():
    x = randn(4, 4, seed=9)
    w = randn(4, 4, seed=10).requires_grad_()
    q = quantizer(lq.FloatingPoint(5, 2), lq.FloatingPoint(5, 2))
    lq.manual_seed(5)
    (q(x) * w).sum().backward()
    first = w.grad.clone()
    w.grad = None
    lq.manual_seed(5)
    (q(x) * w).sum().backward()
    assert torch.equal(w.grad, first)


def test_quantizer_module_equals_qtorch():
    qt = real_qtorch()
    x, g = randn(8, 20, seed=11), randn(8, 20, seed=12)
    a = Quantizer(lq.FixedPoint(8, 5), lq.FloatingPoint(5, 2), "nearest", "nearest")
    b = qt.quant.Quantizer(qt.FixedPoint(8, 5), qt.FloatingPoint(5, 2), "nearest", "nearest")
    assert isinstance(a, torch.nn.Module)
    ya, ga = grads(a, x, g)
    yb, gb = grads(b, x, g)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)


def mlp_run(mod, optim_name, steps=6):
    """A small MLP with Quantizer layers trained by OptimLP, written against `mod` (qtorch or
    lpsim.qtorch): returns the weights and the optimizer state."""
    torch.manual_seed(0)
    act = mod.quant.Quantizer(mod.FixedPoint(8, 5), mod.FixedPoint(8, 6), "nearest", "nearest")
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), act, torch.nn.ReLU(),
                                torch.nn.Linear(16, 3))
    if optim_name == "sgd":
        base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    else:
        base = torch.optim.Adam(model.parameters(), lr=0.01)
    wq = mod.quant.quantizer(mod.FixedPoint(8, 6), forward_rounding="nearest")
    gq = mod.quant.quantizer(mod.FloatingPoint(5, 4), forward_rounding="nearest")
    mq = mod.quant.quantizer(mod.BlockFloatingPoint(8, 0), forward_rounding="nearest")
    aq = mod.quant.quantizer(mod.FixedPoint(16, 12), forward_rounding="nearest")
    opt = mod.optim.OptimLP(base, weight_quant=wq, grad_scaling=2.0, grad_quant=gq,
                            momentum_quant=mq if optim_name == "sgd" else None, acc_quant=aq)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 12, generator=g)
        y = torch.randint(0, 3, (32,), generator=g)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], base.state


@pytest.mark.parametrize("optim_name", ["sgd", "adam"])
def test_optimlp_training_equals_qtorch(optim_name):
    qt = real_qtorch()
    wa, sa = mlp_run(lq, optim_name)
    wb, sb = mlp_run(qt, optim_name)
    for a, b in zip(wa, wb):
        assert torch.equal(a, b)
    assert not torch.equal(wa[0], mlp_run(lq, optim_name, steps=5)[0][0])  # training moved them
    # weights on the FixedPoint(8, 6) grid
    for a in wa:
        assert torch.equal(a, fixed_point_quantize(a, 8, 6, rounding="nearest"))


def test_optimlp_step_order_without_qtorch():
    """One SGD step by hand: grad_quant(grad * scaling), step from the accumulator,
    acc_quant, weight_quant (QPyTorch's order)."""
    p = torch.nn.Parameter(torch.tensor([0.30, -0.71, 1.13]))
    base = torch.optim.SGD([p], lr=0.1)
    opt = OptimLP(base, weight_quant=quantizer(lq.FixedPoint(8, 3), forward_rounding="nearest"),
                  grad_scaling=4.0,
                  grad_quant=quantizer(lq.FixedPoint(8, 2), forward_rounding="nearest"),
                  acc_quant=quantizer(lq.FixedPoint(16, 8), forward_rounding="nearest"))
    p.grad = torch.tensor([0.1, 0.2, -0.3])
    opt.step()
    gq = fixed_point_quantize(torch.tensor([0.4, 0.8, -1.2]), 8, 2, rounding="nearest")
    acc = fixed_point_quantize(torch.tensor([0.30, -0.71, 1.13]) - 0.1 * gq, 16, 8, rounding="nearest")
    assert torch.equal(opt.weight_acc[p], acc)
    assert torch.equal(p.detach(), fixed_point_quantize(acc, 8, 3, rounding="nearest"))
    assert "LP Optimizer" in repr(opt)


def test_optimlp_refusals():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(TypeError, match="SGD or torch.optim.Adam"):
        OptimLP(torch.optim.RMSprop([p]))
    with pytest.raises(ValueError, match="must be positive"):
        OptimLP(torch.optim.SGD([p], lr=0.1), grad_scaling=0)
    with pytest.raises(TypeError, match="weight_quant must be a function"):
        OptimLP(torch.optim.SGD([p], lr=0.1), weight_quant=lq.FixedPoint(8, 4))


def test_lpsgld_example_runs_and_is_reproducible():
    """python/examples/lpsgld_qtorch.py: three samplers, accuracies of a working classifier,
    8-bit weights for the low-precision ones, the same output twice (seeded rounding)."""
    import re
    import subprocess
    import sys

    from conftest import ROOT

    script = ROOT / "python" / "examples" / "lpsgld_qtorch.py"
    runs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    strip = [re.sub(r"\(\d+\.\d s\)", "", r.stdout) for r in runs]
    assert strip[0] == strip[1]
    rows = re.findall(r"^(\S+)\s+test accuracy (\S+)\s+NLL (\S+)\s+distinct weight values\s+(\d+)",
                      runs[0].stdout, re.M)
    assert [r[0] for r in rows] == ["fp32", "lp-f", "lp-naive"]
    for name, acc, nll, distinct in rows:
        assert float(acc) > 0.8 and float(nll) < 1.0, name
        if name != "fp32":
            assert int(distinct) <= 256, name


class Net(torch.nn.Module):
    """A model with a Sequential, a ModuleDict and plain attributes, as auto_low walks them."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(10, 12), torch.nn.ReLU(),
                                        torch.nn.Dropout(0.0))
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(12, 4)})
        self.act = torch.nn.Tanh()

    def forward(self, x):
        return self.act(self.heads["a"](self.body(x)))


@pytest.mark.parametrize("types", [["linear"], ["linear", "activation"], ["dropout"], []])
def test_auto_low_equals_qtorch(types):
    qt = real_qtorch()
    import qtorch.auto_low as qauto

    import lpsim.qtorch.auto_low as lauto

    torch.manual_seed(0)
    net = Net()
    x, g = randn(5, 10, seed=13), randn(5, 4, seed=14)
    args = dict(layer_types=types, forward_rounding="nearest", backward_rounding="nearest")
    ours = lauto.sequential_lower(net, forward_number=lq.FixedPoint(8, 5),
                                  backward_number=lq.FloatingPoint(5, 2), **args)
    theirs = qauto.sequential_lower(net, forward_number=qt.FixedPoint(8, 5),
                                    backward_number=qt.FloatingPoint(5, 2), **args)
    assert str(ours).replace("lpsim.qtorch.module", "") == str(theirs).replace("qtorch.quant.quant_module", "")
    ya, ga = grads(ours, x, g)
    yb, gb = grads(theirs, x, g)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)
    plain = net(x)
    assert torch.equal(plain, Net.forward(net, x))  # the original model untouched
    if types:
        assert not torch.equal(ya, plain.detach())
    # lower: in place, same values
    net_a, net_b = copy.deepcopy(net), copy.deepcopy(net)
    assert lauto.lower(net_a, forward_number=lq.FixedPoint(8, 5),
                       backward_number=lq.FloatingPoint(5, 2), **args) is None
    qauto.lower(net_b, forward_number=qt.FixedPoint(8, 5),
                backward_number=qt.FloatingPoint(5, 2), **args)
    assert torch.equal(grads(net_a, x, g)[1], grads(net_b, x, g)[1])
    assert torch.equal(net_a(x), ya)


def test_auto_low_refuses_unknown_layer_types():
    import lpsim.qtorch.auto_low as lauto

    with pytest.raises(ValueError, match="layer type 'lineer': unknown; the types are conv"):
        lauto.sequential_lower(Net(), ["lineer"])
    with pytest.raises(TypeError, match="list of names"):
        lauto.lower(Net(), "linear")
