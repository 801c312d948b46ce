#!/usr/bin/env bash
# Check that a user's `pip install atdata-core atdata-storage-s3` works from this repository.
#
# Builds a wheel of the core and of every plugin under plugins/ (pip wheel --no-deps) into a
# temporary folder, creates a fresh virtual environment and installs from that folder the way a
# user would, with the dependencies from the package index:
#
#   1. pip install --find-links <wheels> atdata-core
#      reading an s3:// URL must fail with an error that names atdata-storage-s3;
#   2. pip install --find-links <wheels> atdata-core atdata-storage-s3
#      `atdata plugins` must list the s3 storage backend, loaded.
#
#   scripts/check_install.sh [python]      the Python that builds and hosts the venv (default .venv/bin/python)
#
# scripts/test.sh runs it once, on its first Python.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
python="${1:-$repo/.venv/bin/python}"

work="$(mktemp -d "${TMPDIR:-/tmp}/atdata-install-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
wheels="$work/wheels"
plugins=()
for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && plugins+=("$plugin")
done

started=$SECONDS
echo "check_install: building wheels of atdata-core and ${#plugins[@]} plugins"
"$python" -m pip --disable-pip-version-check -q wheel --no-deps -w "$wheels" . "${plugins[@]}"
ls "$wheels" | sed 's/^/  /'

"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
pip=("$venv_python" -m pip --disable-pip-version-check -q)

# Run the checks outside the repository (its atdata_core folder must not shadow the installed one)
# and with a configuration of their own.
cd "$work"
export XDG_CONFIG_HOME="$work/config"
unset ATDATA_CONFIG ATDATA_PLUGINS_ALLOW ATDATA_PLUGINS_DENY

echo "check_install: pip install --find-links <wheels> atdata-core"
"${pip[@]}" install --find-links "$wheels" atdata-core
"$venv_python" - <<'EOF'
import atdata_core
from atdata_core.errors import MissingImplementation
from atdata_core.storage import open_shard

assert "site-packages" in atdata_core.__file__, atdata_core.__file__
try:
    open_shard("s3://bucket/data-000000.tar")
except MissingImplementation as err:
    assert "pip install atdata-storage-s3" in str(err), f"the error does not name atdata-storage-s3: {err}"
    print(f"  atdata-core alone, s3:// -> {err}")
else:
    raise SystemExit("check_install: s3:// was opened without atdata-storage-s3 installed")
EOF

echo "check_install: pip install --find-links <wheels> atdata-core atdata-storage-s3"
"${pip[@]}" install --find-links "$wheels" atdata-core atdata-storage-s3
listing="$("$work/venv/bin/atdata" plugins)"
echo "$listing" | sed 's/^/  /'
if ! echo "$listing" | grep -Eq "^s3 +atdata-storage-s3 .* loaded" \
    || ! echo "$listing" | grep -q "provides storage backend 's3': schemes s3://"; then
    echo "check_install: atdata plugins does not list the s3 storage backend as loaded" >&2
    exit 1
fi
echo "check_install: ok ($((SECONDS - started)) s)"
