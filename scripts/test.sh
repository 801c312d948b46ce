#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run every test:
# the core's, each plugin's, and the integration tests against a local PDS
# sandbox (started by a pytest fixture), an S3 server and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
test_dirs=(tests)
for plugin in plugins/*/; do
    [ -d "$plugin/tests" ] && test_dirs+=("$plugin/tests")
done
exec .venv/bin/python -m pytest -p no:cacheprovider "${test_dirs[@]}" "$@"
