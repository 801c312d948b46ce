#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run every test (the core's, each
# plugin's, and the integration tests against a local PDS sandbox started by a pytest fixture,
# an S3 server and PostgreSQL) on the oldest and the newest supported Python:
#
#   3.11 in .venv           with torch 2.13.0 (CPU), as the PyTorch adapter is tested
#   3.13 in .venv-py3.13    with the newest numpy, without torch (its tests are skipped)
#
# Arguments go to pytest. ATDATA_TEST_PYTHONS="3.13" runs one of them only. On the first Python,
# scripts/check_install.sh also builds wheels of the core and every plugin and installs
# `atdata-core atdata-storage-s3` from them into a fresh venv, as a user would, and builds the
# documentation site (mkdocs --strict).
set -uo pipefail
cd "$(dirname "$0")/.."

test_dirs=(tests)
for plugin in plugins/*/; do
    [ -d "$plugin/tests" ] && test_dirs+=("$plugin/tests")
done

failed=()
for version in ${ATDATA_TEST_PYTHONS:-3.11 3.13}; do
    case "$version" in
        3.11) venv=.venv; setup=() ; torch_env=() ;;
        3.13) venv=.venv-py3.13; setup=(--no-torch --newest); torch_env=(ATDATA_SKIP_TORCH=1) ;;
        *) echo "test.sh: no test environment for Python $version (3.11 and 3.13 are tested)" >&2; exit 2 ;;
    esac
    echo "=== Python $version ($venv)"
    bash scripts/setup.sh --python "$version" --venv "$venv" ${setup[@]+"${setup[@]}"} || exit 1
    env ${torch_env[@]+"${torch_env[@]}"} "$venv/bin/python" -m pytest -p no:cacheprovider "${test_dirs[@]}" "$@" \
        || failed+=("$version")
    # Wheels of the core and every plugin, and `pip install atdata-core atdata-storage-s3` into a fresh
    # venv from them: once, not per Python (about 40 s).
    if [ -z "${install_checked:-}" ]; then
        install_checked=1
        bash scripts/check_install.sh "$venv/bin/python" || failed+=("$version (install check)")
    fi
    # The documentation site, strictly (a broken link, anchor or API reference fails the run): once.
    # Not --quiet: it hides the warnings strict mode counts, and the build would pass.
    if [ -z "${docs_built:-}" ]; then
        docs_built=1
        NO_MKDOCS_2_WARNING=1 "$venv/bin/python" -m mkdocs build --strict || failed+=("$version (docs build)")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "tests failed on Python ${failed[*]}" >&2
    exit 1
fi
