"""lpsim.Format and lpsim.formats: the CLI's table, canonical specs, codes."""

import subprocess

import numpy as np
import pytest

import lpsim
from conftest import cli, lpsim_bin, same


def test_formats_equal_the_cli_table():
    same(lpsim.formats(), lpsim.from_json(cli("formats", "--json")))
    names = [f["name"] for f in lpsim.formats()]
    assert "bf16" in names and "mxfp8" in names


@pytest.mark.parametrize("spec", ["bf16", "e4m3fn", "float:e=4,m=3,bias=9", "fixed:wl=8,fl=6",
                                  "bfp:wl=8,size=row", "mx:elem=e2m1fn,size=32", "qtorch:e=5,m=2"])
def test_spec_round_trips(spec):
    f = lpsim.Format(spec)
    g = lpsim.Format(str(f))
    assert f == g and hash(f) == hash(g) and f.spec == str(f)
    assert repr(f) == f'lpsim.Format("{f}")'
    assert f.info()["name"] == str(f) and f.info()["bits"] == f.bits


def test_facts():
    f = lpsim.Format("e4m3fn")
    assert (f.kind, f.bits, f.is_block, f.fits_f32) == ("float", 8, False, True)
    assert f.info()["max"] == 448.0 and f.info()["specials"] == "nan -0"
    assert lpsim.Format("mxfp8").is_block and lpsim.Format("mxfp8").kind == "mx"
    assert not lpsim.Format("fp64").fits_f32
    assert lpsim.Format("fixed:wl=8,fl=6").info()["fl"] == 6
    assert lpsim.Format("e4m3fn") != lpsim.Format("e5m2")
    by_name = {r["name"]: r for r in lpsim.formats()}
    assert lpsim.Format("bf16").info() == by_name["bf16"]


def test_every_e4m3fn_code_round_trips():
    f = lpsim.Format("e4m3fn")
    codes = np.arange(256, dtype=np.uint16)
    values = f.decode(codes)
    assert values.dtype == np.float64 and values.shape == (256,)
    assert np.isnan(values[0x7F]) and np.isnan(values[0xFF]) and values[0x7E] == 448.0
    back = f.encode(values)
    assert back.dtype == np.uint8 and np.array_equal(back, codes)
    assert f.encode(np.array([[1.0, -2.0]])).shape == (1, 2)
    assert lpsim.Format("fp16").encode([1.0]).dtype == np.uint16
    assert lpsim.Format("fp32").encode([1.0])[0] == 0x3F800000
    assert lpsim.Format("fp64").encode([1.0]).dtype == np.uint64


def test_codes_equal_the_cli():
    x = np.array([0.1, -3.3, 1e9, 2.0 ** -9, -0.0, 17.0])
    text = "".join(f"{float(v)!r}\n" for v in x)
    out = subprocess.run([lpsim_bin(), "quantize", "--format", "e5m2"], input=text,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    want = [int(line.split(",")[1], 16) for line in out[1:]]
    f = lpsim.Format("e5m2")
    assert f.encode(lpsim.quantize(x, f)).tolist() == want


def test_encode_rounds_to_nearest_even():
    f = lpsim.Format("e4m3fn")
    assert f.encode([1.0625])[0] == f.encode([1.0])[0]  # the tie goes to the even code
    assert f.encode([1.1])[0] == f.encode([1.125])[0]


def test_errors():
    with pytest.raises(lpsim.FormatError, match="unknown format"):
        lpsim.Format("e4m3")
    with pytest.raises(lpsim.FormatError, match="block format"):
        lpsim.Format("mxfp8").encode([1.0])
    with pytest.raises(lpsim.FormatError, match="block format"):
        lpsim.Format("bfp:wl=8,size=32").decode([1])
    with pytest.raises(lpsim.FormatError, match="more than the 8 bits"):
        lpsim.Format("e4m3fn").decode([256])
    with pytest.raises(lpsim.FormatError, match="negative"):
        lpsim.Format("int8").decode(np.array([-1]))
    with pytest.raises(TypeError, match="integer array"):
        lpsim.Format("int8").decode(np.array([1.0]))
