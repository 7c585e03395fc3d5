"""Inventory snapshot files (DESIGN §3): write them atomically, read them checked, view them.

- :func:`read_snapshot` reads a whole file into the pydantic models (small files, fixtures).
- :func:`write_snapshot` writes one atomically: a temporary file in the same folder, then a rename,
  so a reader never sees half a snapshot and a failed write leaves the old file as it was.
- :func:`read_snapshot_view` streams a big JSON file straight into the engine's view records.

How the streaming reader stays fast. Only the top level of the document is walked
(``stream.py``); the file is read in 1 MB chunks, so memory holds the compact view records and
never the whole document. Within a chunk, the items of an array that lie whole in it are decoded
and checked in one call of msgspec's C decoder straight into the view's records, timestamps
included (``items.py``); the few checks left run over the whole batch at once and the records
are grouped by agent one run of an agent's items at a time (``builder.py``). A chunk holding
anything else is read item by item: the standard library's C decoder, a quick check, and the
pydantic model for what the quick check does not accept, which then decides and words the error.
``tests/test_snapshot_equivalence.py`` holds both fast paths to never accepting what the model
refuses. The cyclic garbage collector is paused while reading: the records are acyclic, and its
repeated walks over millions of them doubled the time on a 200 MB file. ijson (even its yajl2_c
backend) was measured slower here: it needs one full pass per array, several times the cost of
``json.load``; see docs/inventory-format.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from connectors.file import YAML_SUFFIXES, InventoryFileError, load_inventory_file
from connectors.models import Inventory
from connectors.schema import describe_validation_error
from service.errors import SnapshotError
from service.files import OutputFileError, write_atomically
from service.registry.db import gc_paused
from service.snapshot.builder import (
    ViewBuilder,
    agent_record,
    grant_fields,
    snapshot_credential,
)
from service.snapshot.stream import JsonStream
from service.view import InventoryView

MEGABYTE = 1024 * 1024
DEFAULT_MAX_MB = 2048
ARRAY_FIELDS = ("agents", "grants", "credentials")
HEADER_FIELDS = ("version", "collected_at", "sources")


def read_snapshot(path: Path) -> Inventory:
    """The whole snapshot as models (JSON, or YAML by suffix); errors name the file and place."""
    try:
        return load_inventory_file(path)
    except InventoryFileError as exc:
        raise SnapshotError(str(exc)) from None


def write_snapshot(path: Path, inventory: Inventory) -> None:
    """Write ``inventory`` as JSON to ``path`` atomically; on failure nothing changes there."""
    try:
        write_atomically(path, inventory.model_dump_json(indent=2) + "\n")
    except OutputFileError as exc:
        raise SnapshotError(str(exc).replace("cannot write the file", "cannot write snapshot")
                            ) from None


def view_from_inventory(inventory: Inventory) -> InventoryView:
    """Group an inventory's models by agent (sorted by id) into the engine's view."""
    builder = ViewBuilder(origin="inventory")
    for index, agent in enumerate(inventory.agents):
        builder.add_agent(index, agent_record(agent))
    for index, credential in enumerate(inventory.credentials):
        builder.add_credential(index, snapshot_credential(credential))
    for index, grant in enumerate(inventory.grants):
        builder.add_grant(index, grant_fields(grant))
    return builder.finish(inventory.sources)


def read_snapshot_view(path: Path, *, max_bytes: int | None = None) -> InventoryView:
    """Stream a snapshot file into the engine's view, checking it as :func:`read_snapshot` does.

    A file larger than ``max_bytes`` (default 2048 MB) is refused before it is read.
    """
    _refuse_oversized(path, DEFAULT_MAX_MB * MEGABYTE if max_bytes is None else max_bytes)
    if path.suffix.lower() in YAML_SUFFIXES:
        return view_from_inventory(read_snapshot(path))
    origin = str(path)
    builder = ViewBuilder(origin=origin)
    header: dict[str, Any] = {}
    stream = JsonStream(_open_text(path), origin, plain_batches=builder.plain_readers)
    with stream.handle, gc_paused():
        for field, start, value, checked in stream.members(streamed=ARRAY_FIELDS):
            if checked:
                builder.add_plain(field, start, value)
            elif start is not None:
                builder.add_raw(field, start, value)
            elif field in HEADER_FIELDS:
                header[field] = value
            elif field in ARRAY_FIELDS:
                raise SnapshotError(f"{origin}: {field}: Input should be a valid list")
            else:
                raise SnapshotError(f"{origin}: {field}: Extra inputs are not permitted")
    return builder.finish(_checked_header(origin, header).sources)


def _refuse_oversized(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot ({exc.strerror})") from None
    if size > max_bytes:
        raise SnapshotError(
            f"{path}: the snapshot is {size:,} bytes, above the limit of "
            f"{max_bytes / MEGABYTE:g} MB (see --max-snapshot-mb)")


def _open_text(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot ({exc.strerror})") from None


def _checked_header(origin: str, header: dict[str, Any]) -> Inventory:
    """Version, collection time and sources, checked by the Inventory model itself."""
    try:
        return Inventory.model_validate(header)
    except ValidationError as exc:
        raise SnapshotError(f"{origin}: {describe_validation_error(exc)}") from None
