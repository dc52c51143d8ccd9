"""lpsim.gemm: bit-equal to `lpsim gemm --a --b --out` with the same counts; errors typed."""

import json

import numpy as np
import pytest

import lpsim
from conftest import cli, same

MACS = [
    {"acc": "fp16", "a_format": "bf16", "b_format": "bf16", "order": "chunk=4"},
    {"acc": "fp16", "a_format": "e4m3fn", "b_format": "e4m3fn", "acc_rounding": "sr:bits=8"},
    {"acc": "fixed:wl=16,fl=4,sat=off", "a_format": "int8", "b_format": "int8"},
    {"acc": "fp32", "a_format": "mxfp8", "b_format": "mxfp8", "fused": True, "order": "pairwise"},
    {"acc": "float:e=8,m=12", "a_format": "fp16", "b_format": "fp16", "product": "fp16"},
]


def flags(mac):
    args = ["--acc", mac["acc"]]
    for key, flag in [("a_format", "--a-format"), ("b_format", "--b-format"), ("product", "--product"),
                      ("acc_rounding", "--acc-rounding"), ("order", "--order")]:
        if key in mac:
            args += [flag, mac[key]]
    if mac.get("fused"):
        args.append("--fused")
    return args


@pytest.mark.parametrize("mac", MACS)
def test_equals_cli(tmp_path, mac):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((9, 70)) * 3
    b = rng.standard_normal((70, 5)) * 3
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    report = json.loads(cli("gemm", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy"),
                            "--seed", "3", "--out", str(tmp_path / "c.npy"), "--json", *flags(mac)))
    c, counts = lpsim.gemm(a, b, mac, seed=3)
    want = np.load(tmp_path / "c.npy")
    assert c.dtype == want.dtype and c.shape == (9, 5)
    assert np.array_equal(c, want, equal_nan=True)
    same(counts, lpsim.from_json(json.dumps(report["counts"])))


def test_threads_and_inputs():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((64, 300)).astype(np.float32)
    b = rng.standard_normal((300, 48)).astype(np.float32)
    mac = {"acc": "fp16", "a_format": "bf16", "b_format": "bf16", "acc_rounding": "sr"}
    c1, n1 = lpsim.gemm(a, b, mac, seed=1, threads=1)
    c2, n2 = lpsim.gemm(a, b, mac, seed=1, threads=2)
    assert np.array_equal(c1, c2) and n1 == n2
    c3, _ = lpsim.gemm(a.tolist(), np.asfortranarray(b), mac, seed=1)
    assert np.array_equal(c1, c3)
    c4, _ = lpsim.gemm(a, b, mac, seed=2)
    assert not np.array_equal(c1, c4)
    exact, _ = lpsim.gemm(a, b, {"acc": "fp64", "fused": True})
    assert exact.dtype == np.float64
    assert np.allclose(exact, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-12, atol=1e-12)


def test_errors():
    a, b = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(lpsim.GemmError, match="did you mean `acc_rounding`"):
        lpsim.gemm(a, b, {"acc": "fp32", "acc_round": "sr"})
    with pytest.raises(lpsim.GemmError, match="needs `acc`"):
        lpsim.gemm(a, b, {})
    with pytest.raises(lpsim.GemmError, match="A is 2x3 but B is 4x3"):
        lpsim.gemm(a, b.T, {"acc": "fp32"})
    with pytest.raises(lpsim.GemmError, match="2-D"):
        lpsim.gemm(np.ones(3), b, {"acc": "fp32"})
    with pytest.raises(lpsim.GemmError, match="chunk"):
        lpsim.gemm(a, b, {"acc": "fp32", "order": "chunk=0"})
    with pytest.raises(lpsim.GemmError, match="float or fixed"):
        lpsim.gemm(a, b, {"acc": "mxfp8"})
    with pytest.raises(lpsim.FormatError):
        lpsim.gemm(a, b, {"acc": "fp33"})
    with pytest.raises(lpsim.GemmError, match="at least 1"):
        lpsim.gemm(np.ones((0, 3)), b, {"acc": "fp32"})
    with pytest.raises(TypeError, match="dict"):
        lpsim.gemm(a, b, "fp32")
