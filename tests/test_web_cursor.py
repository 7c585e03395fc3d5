"""Keyset pagination: every row exactly once across pages, on SQLite and PostgreSQL, and a
foreign cursor refused as bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from service.errors import InputError
from service.web.cursor import (
    PageRequest,
    decode_cursor,
    encode_cursor,
    finish_page,
    keyset_page,
)


@pytest.fixture
def things(registry_engine):
    metadata = MetaData()
    table = Table("cursor_things", metadata, Column("id", String, primary_key=True),
                  Column("owner", String, nullable=False), Column("size", Integer))
    metadata.create_all(registry_engine)
    rows = [{"id": f"a{n:03d}", "owner": f"o{n % 7}", "size": n} for n in range(101)]
    with registry_engine.begin() as conn:
        conn.execute(insert(table), rows)
    yield table
    metadata.drop_all(registry_engine)


def _all_pages(engine, table, limit):
    seen, cursor, pages = [], None, 0
    while True:
        request = PageRequest(cursor=cursor, limit=limit)
        query = keyset_page(select(table.c.owner, table.c.id), order=[table.c.owner, table.c.id],
                            request=request)
        with engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        page = finish_page(rows, request=request, key_of=lambda row: row)
        seen.extend(page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return seen, pages


@pytest.mark.parametrize("limit", [1, 10, 101, 500])
def test_pages_cover_every_row_once_in_order(registry_engine, things, limit):
    seen, pages = _all_pages(registry_engine, things, limit)
    assert len(seen) == 101
    assert seen == sorted(seen)
    assert pages == -(-101 // limit)  # no empty page after the last full one


def test_last_page_has_no_cursor(registry_engine, things):
    request = PageRequest(cursor=None, limit=200)
    with registry_engine.connect() as conn:
        rows = list(conn.execute(keyset_page(select(things.c.id), order=[things.c.id],
                                             request=request)))
    page = finish_page(rows, request=request, key_of=lambda row: (row.id,))
    assert page.next_cursor is None
    assert len(page.items) == 101


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", encode_cursor(["a", "b", "c"]),
                                    encode_cursor([{"x": 1}])])
def test_foreign_cursor_is_bad_input(cursor):
    with pytest.raises(InputError, match="cursor: not a cursor this API returned"):
        decode_cursor(cursor, width=1)


def test_cursor_round_trips():
    assert decode_cursor(encode_cursor(["o1", "a001"]), width=2) == ("o1", "a001")
