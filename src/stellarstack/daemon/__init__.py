"""The node daemon: runs game servers on one machine, driven by the panel through the broker.

Entry points: `run_daemon(settings)` (standalone, with its HTTP server) and
`DaemonService(settings, broker)` (embedded in the panel's process).
"""

from stellarstack.daemon.agent import Agent
from stellarstack.daemon.service import DaemonService, run_daemon

__all__ = ["Agent", "DaemonService", "run_daemon"]
