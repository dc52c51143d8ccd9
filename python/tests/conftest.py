"""Shared helpers of the Python package's tests: the `lpsim` binary they compare against, the
repository root (the shipped workloads and architectures), and a deep equality for reports."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def lpsim_bin() -> str:
    """The CLI: $LPSIM_BIN, else the release build of this checkout."""
    path = os.environ.get("LPSIM_BIN", str(ROOT / "target" / "release" / "lpsim"))
    if not Path(path).exists():
        pytest.fail(f"no lpsim binary at {path}: run `cargo build --release` (python/test.sh does)")
    return path


def cli(*args: str, cwd: Path = ROOT) -> str:
    """Run the CLI, return its standard output; fail the test with its error otherwise."""
    r = subprocess.run([lpsim_bin(), *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"lpsim {' '.join(args)} failed: {r.stderr}"
    return r.stdout


def same(a, b, path="") -> None:
    """Deep equality of reports: dicts (same keys), lists, NumPy arrays (bit-equal values, NaN
    equal to NaN), floats compared exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert list(a.keys()) == list(b.keys()), f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, path
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} vs {b!r}"


@pytest.fixture
def in_root(monkeypatch):
    """Run the test in the repository root, where the shipped relative paths resolve."""
    monkeypatch.chdir(ROOT)
    return ROOT
