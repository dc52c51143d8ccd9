#!/bin/sh
# The Python package's tests: a fresh virtual environment, the package built with maturin from
# this checkout (sharing the root crate's target/ so its dependencies are not compiled twice)
# and installed, then pytest. The tests compare against the `lpsim` binary, built here too.
# LPSIM_VENV=DIR reuses (or creates) the environment in DIR instead of a temporary one.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=${LPSIM_VENV:-$work/venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" numpy pytest
cd "$root"
cargo build --release --bin lpsim
CARGO_TARGET_DIR="$root/target" "$venv/bin/maturin" build --release \
    --manifest-path python/Cargo.toml --interpreter "$venv/bin/python" --out "$work/wheels"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$work"/wheels/lpsim-*.whl
LPSIM_BIN="$root/target/release/lpsim" "$venv/bin/python" -m pytest -q python/tests
