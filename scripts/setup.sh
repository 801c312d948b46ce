#!/usr/bin/env bash
# Create a virtual environment and install atdata-core, every plugin under plugins/, and the
# test tools. Safe to re-run: pip skips what is already there.
#
#   scripts/setup.sh                      .venv on Python 3.11 (the oldest supported), with torch
#   scripts/setup.sh --python 3.13 --venv .venv-py3.13 --no-torch --newest
#
#   --python X.Y   the Python version: found as pythonX.Y on PATH, else through pyenv
#                  (or give the interpreter itself in $PYTHON)
#   --venv DIR     where the environment goes (default .venv)
#   --no-torch     skip PyTorch (also ATDATA_SKIP_TORCH=1); its tests are then skipped
#   --newest       upgrade numpy to the newest release this Python can install
set -euo pipefail
cd "$(dirname "$0")/.."

version=3.11
venv=.venv
with_torch=1
newest=0
[ "${ATDATA_SKIP_TORCH:-0}" = "1" ] && with_torch=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) version="$2"; shift 2 ;;
        --venv) venv="$2"; shift 2 ;;
        --no-torch) with_torch=0; shift ;;
        --newest) newest=1; shift ;;
        *) echo "setup.sh: unknown argument $1 (see the comment at the top of scripts/setup.sh)" >&2; exit 2 ;;
    esac
done

# Print the path of a working Python X.Y interpreter, or fail saying how to get one.
find_python() {
    local want="$1" candidate pyenv_version
    # a pyenv shim is on PATH even when that version is not selected, and then fails: try to run it
    if candidate="$(command -v "python$want")" && "$candidate" -c "import sys" >/dev/null 2>&1; then
        echo "$candidate"
        return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_version="$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}(\.[0-9]+)?$" | sort -V | tail -n 1 || true)"
        if [ -n "$pyenv_version" ]; then
            candidate="$(PYENV_VERSION="$pyenv_version" pyenv which "python$want" 2>/dev/null || true)"
            if [ -n "$candidate" ] && "$candidate" -c "import sys" >/dev/null 2>&1; then
                echo "$candidate"
                return
            fi
        fi
    fi
    echo "setup.sh: Python $want was not found (no working python$want on PATH, none in pyenv)." >&2
    echo "  Install it (e.g. 'pyenv install $want'), or give the interpreter: PYTHON=/path/to/python$want" >&2
    return 1
}

if [ ! -x "$venv/bin/python" ]; then
    python="${PYTHON:-}"
    [ -n "$python" ] || python="$(find_python "$version")"
    "$python" -m venv "$venv"
fi
have="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ -z "${PYTHON:-}" ] && [ "$have" != "$version" ]; then
    echo "setup.sh: $venv holds Python $have, not $version; remove $venv to recreate it" >&2
    exit 1
fi
PIP=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null

extras="test,sandbox,docs"   # docs: mkdocs for `make docs` and the build in scripts/test.sh
editables=(-e ".[$extras]")
# Each plugin with its test extra (pip only warns about a plugin that has none).
for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && editables+=(-e "${plugin%/}[test]")
done
"${PIP[@]}" install "${editables[@]}"

if [ "$newest" = "1" ]; then
    "${PIP[@]}" install --upgrade numpy
fi

# The PyTorch adapter is tested against the CPU build of torch 2.13.0. Only on the oldest
# Python: for the others pip would fetch a multi-GB CUDA build.
if [ "$with_torch" = "1" ]; then
    "$venv/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0"
fi

# The AppView's web pages are tested in headless Chromium driven by its chromedriver: Debian's
# packages: the browser builds that test tools download are out of reach offline.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install=()
    if [ "$(id -u)" = "0" ]; then
        apt_install=(env DEBIAN_FRONTEND=noninteractive)
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        apt_install=(sudo env DEBIAN_FRONTEND=noninteractive)
    fi
    if [ ${#apt_install[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: installing chromium and chromium-driver (the web pages' tests run in them)"
        if ! { "${apt_install[@]}" apt-get update -qq && "${apt_install[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
            echo "setup.sh: apt-get could not install chromium and chromium-driver; the AppView's browser tests will fail" >&2
        fi
    else
        echo "setup.sh: chromium and chromedriver are missing and cannot be installed here (not root, no sudo" >&2
        echo "  without a password, or no apt-get); the AppView's browser tests will fail until they are installed:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2
    fi
fi

# Interop tests run the other federation client's real array codec from its published wheel.
mkdir -p .cache/interop
if ! ls .cache/interop/atdata-*.whl >/dev/null 2>&1; then
    "${PIP[@]}" download --no-deps --pre --ignore-requires-python "atdata==0.7.0b1" -d .cache/interop
fi
echo "environment ready: $venv (Python $have, numpy $("$venv/bin/python" -c 'import numpy; print(numpy.__version__)'))"
