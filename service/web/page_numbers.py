"""Numbered page links for the list pages: the first, the last, and a few around the current."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

AROUND = 2


def page_count(total: int, size: int) -> int:
    """Pages of ``size`` needed for ``total`` rows; one (empty) page when there are none."""
    return max(1, -(-total // size))


def page_numbers(page: int, pages: int) -> list[int | None]:
    """The page numbers to link, ``None`` where a run of pages is left out:
    ``page_numbers(7, 20) == [1, None, 5, 6, 7, 8, 9, None, 20]``."""
    shown = sorted({1, pages, *range(max(1, page - AROUND), min(pages, page + AROUND) + 1)})
    out: list[int | None] = []
    previous = 0
    for number in shown:
        if number - previous > 1:
            out.append(None)
        out.append(number)
        previous = number
    return out


def page_query(params: Mapping[str, str], **changes: str | int) -> str:
    """The query string of ``params`` (empty values left out) with ``changes`` applied."""
    merged = {**params, **{key: str(value) for key, value in changes.items()}}
    return urlencode({key: value for key, value in merged.items() if value})
