"""A test "game": a shell script that behaves like a game server, as a Docker image and a blueprint.

The script (`GAME_SCRIPT`) runs the same under busybox `sh` in the image and Debian's `sh` on
the process runtime. It prints loading lines, serves `$SERVER_PORT` over HTTP when busybox is
at hand, prints `Server ready on port N`, then reads console input:

- `stop`      prints "Stopping..." and exits 0 (the graceful stop command);
- `crash`     exits 3 (an unexpected exit);
- `flood N`   prints N numbered lines as fast as it can;
- `colour`    prints an ANSI-coloured line;
- anything else is echoed back as `> text`.

SIGTERM and SIGINT also stop it cleanly.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.services import build_busybox_image

__all__ = [
    "GAME_BLUEPRINT_SLUG",
    "GAME_IMAGE",
    "GAME_SCRIPT",
    "GAME_SCRIPT_PATH",
    "build_game_image",
    "game_blueprint_yaml",
    "write_game_blueprint",
    "write_game_script",
]

GAME_IMAGE = "stellarstack-test/game:latest"
GAME_BLUEPRINT_SLUG = "test-game"
GAME_SCRIPT_PATH = "/game.sh"
"""Where the script is inside the image (the process runtime runs a copy: write_game_script)."""

GAME_SCRIPT = r"""#!/bin/sh
# StellarStack test game: see tests/support/game_image.py.
PORT="${SERVER_PORT:-25565}"
HTTPD=""
echo "Loading test game..."
echo "Preparing world ${WORLD_NAME:-world}"
if command -v busybox >/dev/null 2>&1; then
  mkdir -p ./www && echo "test game" > ./www/index.html
  busybox httpd -f -p "$PORT" -h ./www &
  HTTPD=$!
fi
quit() { [ -n "$HTTPD" ] && kill "$HTTPD" 2>/dev/null; exit "$1"; }
trap 'echo "Stopping (signal)"; quit 0' TERM INT
echo "Server ready on port $PORT"
while IFS= read -r line; do
  case "$line" in
    stop) echo "Stopping..."; quit 0 ;;
    crash) echo "Crashing!"; quit 3 ;;
    "flood "*) seq 1 "${line#flood }" | sed 's/^/flood line /' ;;
    colour) printf '\033[32mgreen\033[0m and \033[31mred\033[0m\n' ;;
    *) echo "> $line" ;;
  esac
done
echo "Console closed"
quit 0
"""


def write_game_script(directory: Path) -> Path:
    """Write the game script into `directory`; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "game.sh"
    path.write_text(GAME_SCRIPT)
    path.chmod(0o755)
    return path


def build_game_image(host: str) -> str | None:
    """Build `GAME_IMAGE` FROM scratch with the static busybox; None on success, else why not."""
    return build_busybox_image(
        host,
        GAME_IMAGE,
        files={"game.sh": GAME_SCRIPT},
        tail=f"COPY game.sh {GAME_SCRIPT_PATH}\nWORKDIR /home/container\n"
        f'CMD ["/bin/sh", "{GAME_SCRIPT_PATH}"]\n',
    )


def game_blueprint_yaml(script: str = GAME_SCRIPT_PATH, *, image: str = GAME_IMAGE) -> str:
    """A blueprint for the test game; `script` is where the game script is on the node."""
    return f"""\
slug: {GAME_BLUEPRINT_SLUG}
name: Test Game
description: A shell script that behaves like a game server (tests only).
category: testing
docker:
  image: {image}
process:
  binaries: [sh]
resources: {{memory_mb: 128, cpu: 50, disk_mb: 256, pids: 64}}
ports:
  - {{name: game, port: 25565, protocol: tcp}}
variables:
  - {{env: WORLD_NAME, name: World, default: world, rules: "required|alpha_dash|max:32"}}
  - {{env: GAME_SCRIPT, name: Script, default: "{script}", user_editable: false,
      rules: "required|string|max:255"}}
volumes:
  - {{path: /home/container}}
startup:
  command: 'exec sh {{{{GAME_SCRIPT}}}}'
  stop: {{command: stop, timeout: 10}}
  ready: {{type: log, pattern: 'Server ready on port', timeout: 30}}
versions:
  - {{tag: "1.0", name: "1.0", recommended: true}}
"""


def write_game_blueprint(directory: Path, script: str = GAME_SCRIPT_PATH) -> Path:
    """Write the test game blueprint into `directory` (an operator blueprint dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{GAME_BLUEPRINT_SLUG}.yaml"
    path.write_text(game_blueprint_yaml(script))
    return path
