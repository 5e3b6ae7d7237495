"""The shared shape of wire models: camelCase JSON, and flat `dict[str, str]` stream fields.

A stream entry holds only strings, so an envelope is written one top-level field per entry
field: strings as they are, numbers as decimal text, and structured fields (a command's
`payload`, an event's `data`) as JSON text.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from stellarstack.protocol.errors import MalformedMessageError

__all__ = ["Envelope", "WireModel", "new_message_id", "now"]

MAX_JSON_FIELD_BYTES = 1024 * 1024
"""Largest structured field accepted from a stream entry (bounds memory on hostile input)."""


def new_message_id() -> str:
    """A fresh random id for a command or an event."""
    return str(uuid.uuid4())


def now() -> float:
    """Current Unix time in seconds: the clock of every `timestamp` on the wire."""
    return time.time()


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, snake_case attributes, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with camelCase keys, as the spec writes it."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Envelope(WireModel):
    """A wire model that travels as one stream entry (flat string fields)."""

    json_fields: ClassVar[frozenset[str]] = frozenset()
    """Aliases of the fields written as JSON text."""

    def to_fields(self) -> dict[str, str]:
        """Encode as stream entry fields."""
        fields: dict[str, str] = {}
        for key, value in self.to_wire().items():
            if key in self.json_fields:
                fields[key] = json.dumps(value, separators=(",", ":"), allow_nan=False)
            elif isinstance(value, str):
                fields[key] = value
            elif isinstance(value, bool):
                fields[key] = "true" if value else "false"
            elif isinstance(value, int | float) and math.isfinite(value):
                fields[key] = repr(value)
            else:
                raise TypeError(f"{type(self).__name__}.{key} cannot be a flat stream field")
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Self:
        """Decode stream entry fields; raise MalformedMessageError with a readable reason."""
        values: dict[str, Any] = dict(fields)
        for key in cls.json_fields & values.keys():
            raw = values[key]
            if len(raw) > MAX_JSON_FIELD_BYTES:
                raise MalformedMessageError(f"{cls.__name__}: field {key!r} is larger than 1 MiB")
            try:
                values[key] = json.loads(raw)
            except (json.JSONDecodeError, TypeError) as exc:
                reason = f"{cls.__name__}: field {key!r} is not JSON: {exc}"
                raise MalformedMessageError(reason) from exc
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise MalformedMessageError(_describe(cls.__name__, exc)) from exc


def _describe(name: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}"
        for err in exc.errors()[:5]
    )
    return f"malformed {name}: {problems}"
