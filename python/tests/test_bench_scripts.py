"""The repository's Python bench scripts run and print their figures (speed itself is never
asserted in a test)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "python" / "bench_numpy_epoch.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_numpy_epoch_reports_sgd_and_sgld_epochs():
    for extra, kind in (((), "SGD"), (("--sgld",), "SGLD")):
        r = run("--epochs", "2", "--hidden", "8", *extra)
        assert r.returncode == 0, r.stderr
        m = re.search(
            rf"float32 {kind} epoch, MLP 64-8-10, batch 64, 23 steps: "
            r"median ([0-9.]+) ms, fastest ([0-9.]+) ms",
            r.stdout,
        )
        assert m, r.stdout
        assert 0 < float(m.group(2)) <= float(m.group(1))


def test_numpy_epoch_refuses_bad_sizes():
    r = run("--batch", "0")
    assert r.returncode == 2
    assert "must be at least 1" in r.stderr
