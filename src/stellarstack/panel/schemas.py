"""Shared response shapes: the `{"success": true, "data": …}` envelope of spec §14.2."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["ApiModel", "Envelope", "Pagination", "ok"]

T = TypeVar("T")


class ApiModel(BaseModel):
    """Base of API bodies: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Pagination(ApiModel):
    """Page metadata of a list response."""

    page: int
    per_page: int
    total: int
    total_pages: int


class Envelope(BaseModel, Generic[T]):
    """A successful response."""

    success: bool = True
    data: T
    meta: dict[str, object] | None = None


def ok(data: T, meta: dict[str, object] | None = None) -> Envelope[T]:
    """Wrap data in the success envelope."""
    return Envelope[T](data=data, meta=meta)
