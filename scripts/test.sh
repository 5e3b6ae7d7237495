#!/usr/bin/env bash
# Set everything up (test dependencies included), lint, type-check and run the whole suite.
# With CI=true a test whose component (PostgreSQL, Redis, Docker, chromium) is missing fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

echo "==> ruff"
.venv/bin/ruff check src tests bench
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
set +e
.venv/bin/pytest "$@"
code=$?
set -e
# pytest exits 5 when no test ran: that is a failure for us, never a pass.
exit $code
