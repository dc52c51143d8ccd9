"""lpsim.quantize: bit-equal to `lpsim quantize` on the same arrays, any layout, deterministic
across thread counts, stochastic rounding unbiased, errors typed."""

import numpy as np
import pytest

import lpsim
from conftest import cli

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 65504.0, 1e30, -1e30, 448.0, 0.1]

CASES = [
    ("bf16", "rne"),
    ("bf16", "sr"),
    ("fp16", "rtz"),
    ("e4m3fn", "rne"),
    ("e4m3fn", "sr:bits=8"),
    ("e5m2", "odd"),
    ("e2m1fn", "up"),
    ("fixed:wl=8,fl=6", "sr"),
    ("int8", "rna"),
    ("bfp:wl=8,size=32", "sr"),
    ("bfp:wl=8,size=row", "rne"),
    ("mxfp8", "rne"),
    ("mxfp4", "sr"),
    ("qtorch:e=5,m=2", "rna"),
    ("fp64", "rne"),
    ("fixed:wl=32,fl=10", "down"),
]


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * np.exp(rng.uniform(-8, 8, shape))).astype(dtype)
    flat = x.reshape(-1)
    flat[: len(SPECIAL)] = np.array(SPECIAL, dtype=dtype)[: flat.size]
    return x


def bits64(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("fmt,rounding", CASES)
@pytest.mark.parametrize("shape,dtype", [((1000,), np.float32), ((7, 96), np.float32), ((5, 64), np.float64)])
def test_equals_cli(tmp_path, fmt, rounding, shape, dtype):
    x = data(shape, dtype)
    np.save(tmp_path / "x.npy", x)
    cli("quantize", "--format", fmt, "--rounding", rounding, "--seed", "7",
        "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    want = np.load(tmp_path / "y.npy")
    got = lpsim.quantize(x, fmt, rounding, seed=7)
    assert got.shape == x.shape
    f = lpsim.Format(fmt)
    expected_dtype = np.float32 if (dtype == np.float32 and f.fits_f32) else np.float64
    assert got.dtype == expected_dtype
    # The CLI writes float32 whenever the format fits; compare the values bit for bit.
    assert np.array_equal(bits64(got), bits64(want))


@pytest.mark.parametrize("fmt,rounding", [("bf16", "sr"), ("bfp:wl=8,size=32", "sr"), ("mxfp8", "rne"),
                                          ("e4m3fn", "sr:bits=4"), ("fixed:wl=8,fl=6", "sr")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_do_not_change_results(fmt, rounding, dtype):
    x = data((3, 300_001), dtype, seed=1)  # several parallel chunks, a ragged tail
    ref = lpsim.quantize(x, fmt, rounding, seed=11, threads=1)
    for t in (2, 3, 8, None):
        got = lpsim.quantize(x, fmt, rounding, seed=11, threads=t)
        assert np.array_equal(got.view(np.uint8), ref.view(np.uint8)), t


def test_seed_changes_stochastic_results():
    x = data((10_000,), np.float32)
    a = lpsim.quantize(x, "bf16", "sr", seed=1)
    b = lpsim.quantize(x, "bf16", "sr", seed=2)
    assert not np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(a, lpsim.quantize(x, "bf16", "sr", seed=1), equal_nan=True)


def test_any_strides_equal_the_contiguous_copy():
    x = data((40, 70), np.float32)
    for view in (x[:, ::3], x.T, x[::-2, 5:], np.asfortranarray(x)):
        for fmt in ("e4m3fn", "bfp:wl=8,size=32"):
            got = lpsim.quantize(view, fmt, "sr", seed=3)
            want = lpsim.quantize(np.ascontiguousarray(view), fmt, "sr", seed=3)
            assert got.flags.c_contiguous
            assert np.array_equal(got, want, equal_nan=True)


def test_axis_moves_the_blocks():
    x = data((64, 33), np.float32)
    got = lpsim.quantize(x, "bfp:wl=8,size=32", "rne", axis=0)
    want = lpsim.quantize(np.ascontiguousarray(x.T), "bfp:wl=8,size=32", "rne").T
    assert np.array_equal(got, want, equal_nan=True)
    assert not np.array_equal(got, lpsim.quantize(x, "bfp:wl=8,size=32", "rne"), equal_nan=True)
    # A 3-D array: each row along axis 1 has its own scale.
    y = data((3, 5, 4), np.float64)
    got = lpsim.quantize(y, "bfp:wl=4,size=row", axis=1)
    for i in range(3):
        for k in range(4):
            assert np.array_equal(got[i, :, k], lpsim.quantize(y[i, :, k].copy(), "bfp:wl=4,size=row"),
                                  equal_nan=True)
    # Scalar formats ignore the axis.
    assert np.array_equal(lpsim.quantize(x, "bf16", "sr", axis=0), lpsim.quantize(x, "bf16", "sr"),
                          equal_nan=True)
    with pytest.raises(ValueError, match="axis 2"):
        lpsim.quantize(x, "bfp:wl=8,size=32", axis=2)


def test_out_argument():
    x = data((9, 32), np.float32)
    out = np.empty_like(x)
    r = lpsim.quantize(x, "bf16", out=out)
    assert r is out and np.array_equal(out, lpsim.quantize(x, "bf16"), equal_nan=True)
    # A non-contiguous out, and out with a moved axis.
    big = np.zeros((9, 64), np.float32)
    lpsim.quantize(x, "bf16", out=big[:, ::2])
    assert np.array_equal(big[:, ::2], lpsim.quantize(x, "bf16"), equal_nan=True)
    out2 = np.empty_like(x)
    lpsim.quantize(x, "bfp:wl=8,size=row", out=out2, axis=0)  # a Fortran-ordered view inside
    out3 = np.empty_like(x, order="F")
    lpsim.quantize(x, "bfp:wl=8,size=row", out=out3)
    assert np.array_equal(out3, lpsim.quantize(x, "bfp:wl=8,size=row"), equal_nan=True)
    assert np.array_equal(out2, lpsim.quantize(x, "bfp:wl=8,size=row", axis=0), equal_nan=True)
    with pytest.raises(ValueError, match="shape"):
        lpsim.quantize(x, "bf16", out=np.empty((9, 31), np.float32))
    with pytest.raises(TypeError, match="float32"):
        lpsim.quantize(x, "bf16", out=np.empty((9, 32), np.float64))
    with pytest.raises(TypeError):
        lpsim.quantize(x, "bf16", out=x)  # the input itself is borrowed read-only


def test_shapes_and_dtypes():
    assert lpsim.quantize(np.float32(0.1), "bf16").shape == ()
    assert lpsim.quantize(np.zeros((0, 3), np.float32), "mxfp8").shape == (0, 3)
    assert lpsim.quantize([0.1, 0.2], "bf16").dtype == np.float64  # a list becomes float64
    x32 = np.array([0.1, 1 / 3], np.float32)
    assert lpsim.quantize(x32, "fp64").dtype == np.float64  # wider than f32: f64 carrier
    assert np.array_equal(lpsim.quantize(x32, "fp64"), x32.astype(np.float64))
    assert lpsim.quantize(x32, lpsim.Format("bf16"))[0] == np.float32(0.10009765625)
    swapped = x32.astype(">f4")
    assert np.array_equal(lpsim.quantize(swapped, "bf16"), lpsim.quantize(x32, "bf16"))
    with pytest.raises(TypeError, match="float32 or float64"):
        lpsim.quantize(np.arange(4), "bf16")
    with pytest.raises(TypeError, match="float32 or float64"):
        lpsim.quantize(np.ones(4, np.float16), "bf16")
    with pytest.raises(TypeError, match="spec string"):
        lpsim.quantize(x32, 16)


def test_errors_are_typed_with_the_library_message():
    x = np.ones(4, np.float32)
    with pytest.raises(lpsim.FormatError, match="did you mean `bf16`"):
        lpsim.quantize(x, "bf17")
    with pytest.raises(lpsim.FormatError, match="sr:bits"):
        lpsim.quantize(x, "bf16", "sr:bits=99")
    with pytest.raises(lpsim.FormatError, match="float_quantize has only rna"):
        lpsim.quantize(x, "qtorch:e=5,m=2", "rne")
    with pytest.raises(ValueError, match="threads=0"):
        lpsim.quantize(x, "bf16", threads=0)
    assert issubclass(lpsim.FormatError, lpsim.LpsimError)
    assert issubclass(lpsim.LpsimError, ValueError)


@pytest.mark.parametrize("fmt,x", [("bf16", 0.1), ("e4m3fn", -3.3), ("fixed:wl=8,fl=6", 0.3)])
def test_stochastic_rounding_is_unbiased(fmt, x):
    # n draws of the two neighbours lo < x < hi: the mean is x, with standard deviation
    # (hi - lo) sqrt(p (1 - p) / n); the test allows 5 of them (fixed seed).
    n = 1 << 20
    q = lpsim.quantize(np.full(n, x), fmt, "sr", seed=5)
    lo, hi = np.min(q), np.max(q)
    assert set(np.unique(q)) == {lo, hi} and lo < x < hi
    p = (x - lo) / (hi - lo)
    sigma = (hi - lo) * np.sqrt(p * (1 - p) / n)
    assert abs(q.mean() - x) < 5 * sigma
    assert lpsim.quantize(np.array([x]), fmt, "rne")[0] in (lo, hi)


def test_bf16_against_torch():
    torch = pytest.importorskip("torch")
    x = data((100_000,), np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(lpsim.quantize(x, "bf16"), want, equal_nan=True)


def test_concurrent_python_threads():
    # The GIL is released inside the kernel: Python threads calling quantize at once (on pools
    # of different sizes, built concurrently) each get their own exact result.
    import threading

    xs = [data((50_000,), np.float32, seed=s) for s in range(6)]
    want = [lpsim.quantize(x, "bf16", "sr", seed=9, threads=1) for x in xs]
    got = [None] * len(xs)

    def work(i):
        got[i] = lpsim.quantize(xs[i], "bf16", "sr", seed=9, threads=1 + i % 3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        assert np.array_equal(g.view(np.uint32), w.view(np.uint32))
