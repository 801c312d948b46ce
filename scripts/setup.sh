#!/usr/bin/env bash
# Create .venv and install atdata-core, every plugin under plugins/, and the test tools.
# Safe to re-run: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null

extras="test,sandbox"
editables=(-e ".[$extras]")
for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && editables+=(-e "$plugin")
done
"${PIP[@]}" install "${editables[@]}"

# The PyTorch adapter is tested against the CPU build of torch 2.13.0.
if [ "${ATDATA_SKIP_TORCH:-0}" != "1" ]; then
    .venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0"
fi

# Interop tests run the other federation client's real array codec from its published wheel.
mkdir -p .cache/interop
if ! ls .cache/interop/atdata-*.whl >/dev/null 2>&1; then
    "${PIP[@]}" download --no-deps --pre --ignore-requires-python "atdata==0.7.0b1" -d .cache/interop
fi
echo "environment ready: .venv"
