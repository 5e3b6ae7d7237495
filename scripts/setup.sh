#!/usr/bin/env bash
# Set up StellarStack from a fresh clone: Debian packages, a virtualenv, Python deps, web assets.
#   scripts/setup.sh           what the panel needs to run
#   scripts/setup.sh --test    plus what the test suite needs (PostgreSQL, Redis, Docker, chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  # Install the Debian packages that are missing (needs root and apt-get).
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "Missing Debian packages: ${missing[*]} (run this script as root, or install them)" >&2
    return 1
  fi
  say "Installing Debian packages: ${missing[*]}"
  if [ ! -f /var/lib/apt/lists/.stellar-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -q && touch /var/lib/apt/lists/.stellar-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

base=(python3 git)
python3 -c 'import venv, ensurepip' 2>/dev/null || base+=(python3-venv)
command -v npm >/dev/null || base+=(nodejs npm)
if [ $want_test -eq 1 ]; then
  base+=(postgresql redis-server docker.io busybox-static chromium fonts-dejavu-core file)
fi
apt_install "${base[@]}"

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "Creating the virtualenv (.venv)"
  "$PY" -m venv .venv
fi
extra=""
[ $want_test -eq 1 ] && extra="[dev]"
stamp=".venv/.stellar-installed${extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "Installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".${extra}" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import stellarstack" && touch "$stamp"
fi

say "Building web assets"
bash scripts/build-assets.sh
