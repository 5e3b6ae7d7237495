"""How far a deployment got, as the wizard's progress page shows it (spec §8.1.1 steps 4-5).

The daemon reports free-form stage names in `deployment.progress` events (the panel stores the
latest in `Deployment.step`); this module places them on the fixed list of steps a person
reads, so the page can tick them off whatever words a daemon version uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from stellarstack.panel.db.enums import DeploymentStatus, ServerStatus
from stellarstack.panel.db.models import Deployment, Server

__all__ = ["STEPS", "ProgressView", "StepView", "progress_view", "step_index"]

# (key, label, words of a daemon stage that mean this step)
STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("validating", "Validating", ("validat",)),
    ("reserving", "Reserving resources", ("reserv", "allocat", "queue", "pending")),
    ("pulling_image", "Pulling image", ("pull", "image", "download")),
    ("installing", "Installing", ("install", "config", "prepar")),
    ("creating_container", "Creating container", ("creat", "container")),
    ("starting", "Starting", ("start",)),
    ("waiting_ready", "Waiting for ready", ("ready", "wait", "check")),
)
FIRST_DAEMON_STEP = 2  # validating and reserving are done by the time a deployment exists
DONE_STATUSES = frozenset({ServerStatus.RUNNING})
FAILED_SERVER = frozenset({ServerStatus.INSTALL_FAILED, ServerStatus.CRASHED})
FAILED_DEPLOYMENT = frozenset(
    {DeploymentStatus.FAILED, DeploymentStatus.CANCELLED, DeploymentStatus.ROLLED_BACK}
)


@dataclass(frozen=True, slots=True)
class StepView:
    """One line of the step list."""

    key: str
    label: str
    state: str  # done | current | pending | failed


@dataclass(frozen=True, slots=True)
class ProgressView:
    """The progress page's model: steps, a percentage, and whether it is over."""

    steps: list[StepView]
    percent: int
    online: bool
    failed: bool
    finished: bool
    error: str | None
    stage: str | None


def step_index(stage: str | None) -> int:
    """Where a daemon's stage name falls on `STEPS` (the first daemon step when unknown)."""
    if not stage:
        return FIRST_DAEMON_STEP
    text = stage.lower()
    for index in range(len(STEPS) - 1, -1, -1):
        if any(word in text for word in STEPS[index][2]):
            return index
    return FIRST_DAEMON_STEP


def progress_view(deployment: Deployment | None, server: Server) -> ProgressView:
    """The steps ticked off so far for a server's deployment (None: nothing recorded yet)."""
    online = server.status in DONE_STATUSES
    status = deployment.status if deployment is not None else DeploymentStatus.PENDING
    failed = status in FAILED_DEPLOYMENT or server.status in FAILED_SERVER
    succeeded = status == DeploymentStatus.SUCCEEDED
    # A deployment that finished without starting (start_on_completion off) is over as well.
    finished = online or failed or (succeeded and server.status == ServerStatus.OFFLINE)
    current = (
        len(STEPS)
        if online or succeeded
        else step_index(deployment.step if deployment is not None else None)
    )
    if deployment is not None and deployment.status == DeploymentStatus.PENDING:
        current = min(current, FIRST_DAEMON_STEP)
    steps = []
    for index, (key, label, _words) in enumerate(STEPS):
        if index < current:
            state = "done"
        elif index == current:
            state = "failed" if failed else "current"
        else:
            state = "pending"
        steps.append(StepView(key, label, state))
    if online or succeeded:
        percent = 100
    else:
        # The daemon's own figure when it is further along than the step count says.
        reported = deployment.progress if deployment is not None else 0
        percent = min(99, max(100 * current // len(STEPS), reported))
    error = (deployment.error if deployment is not None else None) or server.install_error
    return ProgressView(
        steps=steps,
        percent=percent,
        online=online,
        failed=failed,
        finished=finished,
        error=error if failed else None,
        stage=deployment.step if deployment is not None else None,
    )
