"""Power actions and reinstall (spec §14.3): `POST /api/v1/servers/{id}/start|stop|restart|kill`.

Each action needs its `server.power.<action>` permission and answers 202 with the queued
command (follow it at `/api/v1/commands/{id}`), or 200 with the finished command when the
body asks to `wait` (at most 10 s) and it finishes in time. Refusals: 409 for a suspended or
installing server, a failed install, or another power action still on its way; 503 (with
Retry-After) when the server's node is not online. `POST /servers/{id}/reinstall`
(`server.reinstall`) answers 202 with the new deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.panel.auth.permissions import ServerAccess, require_server_permission
from stellarstack.panel.db.models import NodeCommand
from stellarstack.panel.deps import BrokerDep, DbSession, SettingsDep, get_database
from stellarstack.panel.domain.commands.schemas import CommandOut
from stellarstack.panel.domain.commands.service import FINISHED, wait_for
from stellarstack.panel.domain.servers import power
from stellarstack.panel.domain.servers.schemas import DeploymentOut, PowerAction, PowerRequest
from stellarstack.panel.schemas import Envelope, ok
from stellarstack.settings import PanelSettings

__all__ = ["router"]

router = APIRouter(prefix="/servers/{server_id}", tags=["servers"])

Starter = Annotated[ServerAccess, Depends(require_server_permission("server.power.start"))]
Stopper = Annotated[ServerAccess, Depends(require_server_permission("server.power.stop"))]
Restarter = Annotated[ServerAccess, Depends(require_server_permission("server.power.restart"))]
Killer = Annotated[ServerAccess, Depends(require_server_permission("server.power.kill"))]
Reinstaller = Annotated[ServerAccess, Depends(require_server_permission("server.reinstall"))]

_FINISHED_IN_TIME: dict[int | str, dict[str, object]] = {
    200: {"description": "The command finished within `wait` seconds."}
}


@dataclass(frozen=True, slots=True)
class PowerCall:
    """What every power route needs besides its permission: the request's parts and services."""

    request: Request
    response: Response
    db: AsyncSession
    broker: Broker
    settings: PanelSettings
    wait: float


async def _power_call(
    request: Request,
    response: Response,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    body: PowerRequest | None = None,
) -> PowerCall:
    wait = body.wait if body is not None else 0.0
    return PowerCall(request, response, db, broker, settings, wait)


Call = Annotated[PowerCall, Depends(_power_call)]


async def _power(action: PowerAction, access: ServerAccess, call: Call) -> Envelope[CommandOut]:
    db = call.db
    command = await power.request_power(db, call.broker, call.settings, access, action)
    if call.wait > 0:
        await db.commit()  # the audit entry, before the connection goes back to the pool
        await db.close()
        finished = await wait_for(get_database(call.request), command.id, within=call.wait)
        command = finished or command
    return _answer(command, call.response)


def _answer(command: NodeCommand, response: Response) -> Envelope[CommandOut]:
    if command.status in FINISHED:
        response.status_code = status.HTTP_200_OK
    return ok(CommandOut.model_validate(command))


@router.post(
    "/start",
    response_model=Envelope[CommandOut],
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FINISHED_IN_TIME,
)
async def start_server(access: Starter, call: Call) -> Envelope[CommandOut]:
    """Start the server."""
    return await _power("start", access, call)


@router.post(
    "/stop",
    response_model=Envelope[CommandOut],
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FINISHED_IN_TIME,
)
async def stop_server(access: Stopper, call: Call) -> Envelope[CommandOut]:
    """Stop the server gracefully (its stop command or signal, then a kill after the timeout)."""
    return await _power("stop", access, call)


@router.post(
    "/restart",
    response_model=Envelope[CommandOut],
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FINISHED_IN_TIME,
)
async def restart_server(access: Restarter, call: Call) -> Envelope[CommandOut]:
    """Stop the server gracefully, then start it again."""
    return await _power("restart", access, call)


@router.post(
    "/kill",
    response_model=Envelope[CommandOut],
    status_code=status.HTTP_202_ACCEPTED,
    responses=_FINISHED_IN_TIME,
)
async def kill_server(access: Killer, call: Call) -> Envelope[CommandOut]:
    """Kill the server at once (SIGKILL): unsaved game state is lost."""
    return await _power("kill", access, call)


@router.post(
    "/reinstall",
    response_model=Envelope[DeploymentOut],
    status_code=status.HTTP_202_ACCEPTED,
)
async def reinstall_server(
    access: Reinstaller,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
) -> Envelope[DeploymentOut]:
    """Reinstall the server: files kept, install script run again, container rebuilt."""
    deployment = await power.request_reinstall(db, broker, settings, access)
    return ok(DeploymentOut.model_validate(deployment))
