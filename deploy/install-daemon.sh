#!/bin/sh
# Install the StellarStack daemon on this machine, register it with a panel, run it under systemd.
#
#   curl -fsSL https://PANEL/api/v1/nodes/install-daemon.sh | sudo sh -s -- \
#       --panel https://PANEL --token strk_reg_...
#
# Options:
#   --panel URL        the panel's URL (required)
#   --token TOKEN      one-time registration token from the panel's "add node" page (required;
#                      or STELLAR_REGISTRATION_TOKEN in the environment)
#   --package SPEC     what pip installs (default: stellarstack; a wheel path or VCS URL works)
#   --hostname HOST    address the panel reaches this node at (default: detected)
#   --port PORT        daemon HTTPS port (default: 5000)
#   --root DIR         install under DIR instead of / (for tests and images)
#   --dry-run          write the directories and the unit under --root, print every command
#                      that would change the system (venv, pip, register, systemctl) instead
#
# Layout: venv in /opt/stellarstack, config + keys in /etc/stellarstack (0600/0700),
# data in /var/lib/stellarstack, unit /etc/systemd/system/stellarstack-daemon.service.
set -eu

PANEL=""
TOKEN="${STELLAR_REGISTRATION_TOKEN:-}"
PACKAGE="stellarstack"
HOSTNAME_OPT=""
PORT="5000"
ROOT=""
DRY_RUN=0

fail() { echo "install-daemon: $*" >&2; exit 1; }
usage() { echo "usage: install-daemon.sh --panel URL --token strk_reg_... [--package SPEC] [--hostname HOST] [--port PORT] [--root DIR] [--dry-run]" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --panel) [ $# -ge 2 ] || usage; PANEL="$2"; shift 2 ;;
        --token) [ $# -ge 2 ] || usage; TOKEN="$2"; shift 2 ;;
        --package) [ $# -ge 2 ] || usage; PACKAGE="$2"; shift 2 ;;
        --hostname) [ $# -ge 2 ] || usage; HOSTNAME_OPT="$2"; shift 2 ;;
        --port) [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
        --root) [ $# -ge 2 ] || usage; ROOT="${2%/}"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage ;;
        *) echo "install-daemon: unknown option $1" >&2; usage ;;
    esac
done

[ -n "$PANEL" ] || { echo "install-daemon: --panel is required" >&2; usage; }
[ -n "$TOKEN" ] || { echo "install-daemon: --token is required" >&2; usage; }
case "$PANEL" in
    http://*|https://*) ;;
    *) fail "--panel must start with http:// or https:// (got: $PANEL)" ;;
esac
case "$TOKEN" in
    strk_reg_*) ;;
    *) fail "--token must be a registration token (strk_reg_...) from the panel's \"add node\" page" ;;
esac
case "$PORT" in
    ''|*[!0-9]*) fail "--port must be a number from 1 to 65535" ;;
esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || fail "--port must be a number from 1 to 65535"
if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    fail "run as root (sudo), or pass --root DIR / --dry-run"
fi

OPT="$ROOT/opt/stellarstack"
VENV="$OPT/venv"
ETC="$ROOT/etc/stellarstack"
DATA="$ROOT/var/lib/stellarstack"
UNIT="$ROOT/etc/systemd/system/stellarstack-daemon.service"

# Run a command, or only show it with --dry-run. The token never appears on a command line.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "+ $*"
    else
        "$@"
    fi
}

echo "install-daemon: installing StellarStack daemon into $OPT"
mkdir -p "$OPT" "$DATA" "$(dirname "$UNIT")"
mkdir -p "$ETC"
chmod 0700 "$ETC"

command -v python3 >/dev/null 2>&1 || [ "$DRY_RUN" -eq 1 ] || fail "python3 is needed (apt-get install python3-venv)"
run python3 -m venv "$VENV"
run "$VENV/bin/pip" install --quiet --upgrade pip
run "$VENV/bin/pip" install --quiet "$PACKAGE"

echo "install-daemon: registering with $PANEL"
set -- "$VENV/bin/stellarstack" daemon register --panel "$PANEL" \
    --config "$ETC/daemon.toml" --data-dir "$DATA" --port "$PORT" --no-start
[ -n "$HOSTNAME_OPT" ] && set -- "$@" --hostname "$HOSTNAME_OPT"
export STELLAR_REGISTRATION_TOKEN="$TOKEN"
run "$@"

cat > "$UNIT" <<EOF
[Unit]
Description=StellarStack daemon
Documentation=https://github.com/stellarstack/stellarstack/blob/main/docs/nodes.md
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=$VENV/bin/stellarstack daemon --config $ETC/daemon.toml
Restart=always
RestartSec=5
User=root
# The daemon keeps its state in the data directory and its secrets in the config directory.
ReadWritePaths=$DATA $ETC
NoNewPrivileges=true
# Game servers on the process runtime run under their own supervisors: a daemon restart or
# upgrade must not take them down (the daemon re-attaches to them when it starts again).
KillMode=process

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$UNIT"

if [ -z "$ROOT" ] || [ "$DRY_RUN" -eq 1 ]; then
    run systemctl daemon-reload
    run systemctl enable --now stellarstack-daemon.service
fi
echo "install-daemon: done; the node appears in the panel as it sends its first heartbeat"
