"""The inventory format's JSON Schema and its place-naming error messages (DESIGN §3).

The pydantic models in :mod:`connectors.models` are the single definition of the format. The JSON
Schema shipped as ``connectors/schema/inventory.schema.json`` is generated from them for people
and other tools; regenerate it after changing a model with::

    python -m connectors.schema

A test keeps the committed file equal to the generated one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.models import FORMAT_VERSION, Inventory

SCHEMA_PATH = Path(__file__).parent / "schema" / "inventory.schema.json"
SCHEMA_ID = f"urn:scopekeeper:inventory:v{FORMAT_VERSION}"


def inventory_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an inventory snapshot, generated from the models."""
    generated = Inventory.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
        "description": "Scopekeeper inventory snapshot: what connectors listed (DESIGN §3).",
    }


def schema_text() -> str:
    """The schema file's exact contents."""
    return json.dumps(inventory_schema(), indent=2, ensure_ascii=False) + "\n"


def describe_validation_error(error: ValidationError, *, at: Sequence[str | int] = ()) -> str:
    """``grants[3].scope: String should match pattern ...`` for the first problem of ``error``.

    ``at`` is where the validated value sits in the document (``("grants", 3)`` for one item), so
    the place is named from the document's top even when only one item was validated.
    """
    first = error.errors()[0]
    where = format_location((*at, *first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def format_location(parts: Sequence[str | int]) -> str:
    """``("grants", 3, "scope")`` -> ``grants[3].scope``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema file (or, with ``--check``, tell whether it is up to date)."""
    args = list(sys.argv[1:] if argv is None else argv)
    expected = schema_text()
    if args == ["--check"]:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != expected:
            print(f"{SCHEMA_PATH} is out of date; run: python -m connectors.schema",
                  file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(expected, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
