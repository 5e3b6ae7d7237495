#!/bin/sh
# Build the panel's front-end assets into src/stellarstack/panel/web/static/ (git-ignored).
#
# Vendor libraries come from npm (package.json + package-lock.json), never from a CDN at
# run time; our own CSS/JS is copied from static_src/. Safe to run again at any time.
#
#   scripts/build-assets.sh            build (runs `npm ci` first when node_modules is missing
#                                      or older than package-lock.json)
#   scripts/build-assets.sh --clean    also reinstall node_modules from the lockfile
set -eu

ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$ROOT"

fail() { echo "build-assets: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js 18+ is needed to build the assets)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (it comes with Node.js)"
[ -f package-lock.json ] || fail "package-lock.json is missing; the build only installs what the lockfile pins"

if [ "${1:-}" = "--clean" ]; then
    rm -rf node_modules
fi

# node_modules/.package-lock.json is written by npm on every install: older than the
# lockfile means someone changed the dependencies since the last install.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "build-assets: installing npm packages from package-lock.json (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error || fail "npm ci failed"
fi

exec node scripts/build-assets.mjs
