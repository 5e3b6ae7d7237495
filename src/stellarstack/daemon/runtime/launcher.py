"""Set resource limits, then exec the server's command (the process runtime's trampoline).

Run as ``python -I -S launcher.py [--as BYTES] [--nproc N] -- command args…``: a fresh
interpreter applies the limits to itself and execs, so the daemon never forks with
`preexec_fn` (unsafe in a threaded process). Standard library only.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]

EXIT_CANNOT_RUN = 127


def main(argv: list[str]) -> int:
    """Apply `--as`/`--nproc` limits and exec the command after `--`; return only on error."""
    import resource

    if "--" not in argv:
        sys.stderr.write("stellarstack-launcher: missing `--` before the command\n")
        return EXIT_CANNOT_RUN
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    limits = {"--as": resource.RLIMIT_AS, "--nproc": resource.RLIMIT_NPROC}
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for flag, value in zip(options[::2], options[1::2], strict=True):
        limit = int(value)
        resource.setrlimit(limits[flag], (limit, limit))
    if not command:
        sys.stderr.write("stellarstack-launcher: no command to run\n")
        return EXIT_CANNOT_RUN
    try:
        os.execvp(command[0], command)  # noqa: S606 - an argv exec; no shell is involved
    except OSError as exc:
        sys.stderr.write(f"stellarstack-launcher: cannot run {command[0]!r}: {exc.strerror}\n")
    return EXIT_CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
