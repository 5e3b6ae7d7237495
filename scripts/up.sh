#!/usr/bin/env bash
# Quick start: set everything up, then run the panel and a local node (`stellarstack up`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stellarstack up "$@"
