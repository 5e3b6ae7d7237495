"""Allocations: parse `"25565"` / `"25565-25600"` port specs, validate IPs, add them atomically.

At most `MAX_PORTS_PER_CALL` ports per call; a port that appears twice in one call, or that
the node already has for that IP and protocol, fails the whole call with the ports named.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections import Counter

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.enums import Protocol
from stellarstack.panel.db.models import Allocation, Node
from stellarstack.panel.domain.nodes.schemas import AllocationCreate
from stellarstack.panel.errors import Conflict, FieldError, NotFound, ValidationFailed

__all__ = [
    "MAX_PORTS_PER_CALL",
    "add_allocations",
    "delete_allocation",
    "list_allocations",
    "parse_ip",
    "parse_ports",
]

MAX_PORTS_PER_CALL = 1000
_PORT_SPEC = re.compile(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?")


def _summary(ports: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(p) for p in ports[:limit])
    return shown + (f" and {len(ports) - limit} more" if len(ports) > limit else "")


def parse_ip(text: str) -> str:
    """The canonical form of an IPv4/IPv6 address; ValidationFailed otherwise."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        raise ValidationFailed(
            [FieldError("ip", f"{text[:64]!r} is not an IPv4 or IPv6 address.")]
        ) from None
    if address.is_multicast:
        raise ValidationFailed([FieldError("ip", "A multicast address cannot be allocated.")])
    return str(address)


def parse_ports(specs: list[str | int]) -> list[int]:
    """Expand port specs into sorted ports; ValidationFailed names every bad entry."""
    errors: list[FieldError] = []
    ports: list[int] = []
    for index, spec in enumerate(specs):
        field = f"ports.{index}"
        match = _PORT_SPEC.fullmatch(str(spec)) if not isinstance(spec, bool) else None
        if match is None:
            errors.append(
                FieldError(field, f"{str(spec)[:32]!r} is not a port or a range like 25565-25600.")
            )
            continue
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not (1 <= first <= 65535 and 1 <= last <= 65535):
            errors.append(FieldError(field, f"{spec!s:.32}: ports run from 1 to 65535."))
        elif last < first:
            errors.append(FieldError(field, f"{spec!s:.32}: a range goes from low to high."))
        elif len(ports) + last - first + 1 > MAX_PORTS_PER_CALL:
            errors.append(
                FieldError(field, f"At most {MAX_PORTS_PER_CALL} ports can be added at once.")
            )
            break
        else:
            ports.extend(range(first, last + 1))
    if errors:
        raise ValidationFailed(errors, "Some ports are invalid.")
    repeated = sorted(port for port, n in Counter(ports).items() if n > 1)
    if repeated:
        raise ValidationFailed(
            [FieldError("ports", f"Listed more than once: {_summary(repeated)}.")],
            "The port ranges overlap.",
        )
    return sorted(ports)


async def list_allocations(db: AsyncSession, node_id: uuid.UUID) -> list[Allocation]:
    """A node's allocations by IP then port."""
    rows = await db.scalars(
        sa.select(Allocation)
        .where(Allocation.node_id == node_id)
        .order_by(Allocation.ip, Allocation.port, Allocation.protocol)
    )
    return list(rows)


async def add_allocations(db: AsyncSession, node: Node, body: AllocationCreate) -> list[Allocation]:
    """Add every requested port or none: a port the node already has is a 409 naming it."""
    ip = parse_ip(body.ip)
    ports = parse_ports(body.ports)
    taken = await _existing(db, node.id, ip, body.protocol, ports)
    if taken:
        raise Conflict(
            f"{ip} already has {body.protocol.value} port(s) {_summary(taken)} on this node; "
            "leave them out and try again."
        )
    created = [
        Allocation(
            node_id=node.id,
            ip=ip,
            port=port,
            protocol=body.protocol,
            ip_alias=body.ip_alias,
            notes=body.notes,
        )
        for port in ports
    ]
    db.add_all(created)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent call added some of them first
        raise Conflict(
            "Some of these ports were added at the same time; reload and retry."
        ) from exc
    return created


async def _existing(
    db: AsyncSession, node_id: uuid.UUID, ip: str, protocol: Protocol, ports: list[int]
) -> list[int]:
    rows = await db.scalars(
        sa.select(Allocation.port).where(
            Allocation.node_id == node_id,
            Allocation.ip == ip,
            Allocation.protocol == protocol,
            Allocation.port.between(ports[0], ports[-1]),
        )
    )
    wanted = set(ports)
    return sorted(p for p in rows if p in wanted)


async def delete_allocation(db: AsyncSession, node: Node, allocation_id: uuid.UUID) -> Allocation:
    """Remove a free allocation; one a server uses is a 409."""
    allocation = await db.get(Allocation, allocation_id)
    if allocation is None or allocation.node_id != node.id:
        raise NotFound("This node has no such allocation.")
    if allocation.server_id is not None:
        raise Conflict("A server uses this allocation; move or delete the server first.")
    await db.delete(allocation)
    return allocation
