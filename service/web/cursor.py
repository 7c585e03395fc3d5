"""Cursor (keyset) pagination for the JSON API.

A list endpoint orders its rows by a stable key (ending in a unique column such as the id) and
answers ``{"items": [...], "next_cursor": "..."}``; the client passes ``next_cursor`` back as
``?cursor=`` for the following page. The cursor is the last row's key, opaque to clients
(URL-safe base64 of JSON), so a page never repeats or skips a row when rows are added or removed
meanwhile, and a deep page costs what the first one does (no OFFSET).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, tuple_

from service.errors import InputError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
Key = tuple[str | int | float | bool | None, ...]
Item = TypeVar("Item")


class CursorPage(BaseModel, Generic[Item]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[Item]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null when this is the last page")


@dataclass(frozen=True, slots=True)
class PageRequest:
    cursor: str | None
    limit: int


def page_request(
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                           description="rows per page")) -> PageRequest:
    """FastAPI dependency: the ``cursor`` and ``limit`` query parameters of a list endpoint."""
    return PageRequest(cursor=cursor, limit=limit)


def encode_cursor(key: Sequence[Any]) -> str:
    text = json.dumps(list(key), separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, width: int) -> Key:
    """The key inside ``cursor``; a cursor that was not made for this list is bad input."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InputError("cursor: not a cursor this API returned") from None
    if not isinstance(key, list) or len(key) != width \
            or not all(isinstance(part, str | int | float | bool) for part in key):
        raise InputError("cursor: not a cursor this API returned")
    return tuple(key)


def keyset_page(query: Select[Any], *, order: Sequence[ColumnElement[Any]],
                request: PageRequest) -> Select[Any]:
    """``query`` ordered by ``order`` (ascending, non-null columns), starting after the
    request's cursor, fetching one row more than the limit so ``finish_page`` can tell
    whether another page follows."""
    if request.cursor is not None:
        key = decode_cursor(request.cursor, width=len(order))
        query = query.where(tuple_(*order) > tuple_(*key))
    return query.order_by(*order).limit(request.limit + 1)


def finish_page(rows: Sequence[Item], *, request: PageRequest,
                key_of: Any) -> CursorPage[Item]:
    """The page of ``rows`` (fetched by ``keyset_page``) with the cursor of its last row, or
    none when no row follows. ``key_of(row)`` gives the row's ordering key."""
    items = list(rows[:request.limit])
    more = len(rows) > request.limit
    return CursorPage[Any](items=items,
                           next_cursor=encode_cursor(key_of(items[-1])) if more else None)
