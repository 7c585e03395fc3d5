"""Shapes the JSON API shares: the error body, the error responses every API route declares in
/openapi.json, and the inventory snapshot's schema (streamed, so declared rather than modelled).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from connectors.schema import SCHEMA_ID, inventory_schema


class ErrorOut(BaseModel):
    """Every API error: one sentence naming the place (field, item, file:line)."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "bad input: the sentence names the field"},
    401: {"model": ErrorOut, "description": "not signed in: send Authorization: Bearer sk_...",
          "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                           "description": "Bearer"}}},
    403: {"model": ErrorOut, "description": "the caller's role does not allow this"},
    404: {"model": ErrorOut, "description": "no such item"},
    503: {"model": ErrorOut, "description": "the registry could not be read or written"},
}
"""``responses=`` of an API route: the errors the app's exception handlers answer with."""


def document_api_errors(app: FastAPI) -> None:
    """Make /openapi.json state, on every /api/ operation, the error answers the app's
    exception handlers give any API route (``ERRORS``), also where a route did not list them,
    and drop FastAPI's 422 (the app maps request validation errors to 400)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)  # the app answers invalid parameters with 400, never 422
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
            if not path.startswith("/api/"):
                continue
            for operation in operations.values():
                for status, spec in ERRORS.items():
                    operation["responses"].setdefault(str(status), _error_response(spec))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _error_response(spec: dict[str, Any]) -> dict[str, Any]:
    response = {"description": spec["description"], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    if "headers" in spec:
        response["headers"] = spec["headers"]
    return response


def inventory_response_schema() -> dict[str, Any]:
    """The shipped inventory JSON Schema (connectors/schema/inventory.schema.json) with its
    ``$defs`` inlined, so it stands alone inside /openapi.json."""
    schema = inventory_schema()
    definitions = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    inlined = _inline(schema, definitions)
    inlined["description"] = (f"{inlined.get('description', '')} The JSON Schema {SCHEMA_ID}, "
                              "shipped as connectors/schema/inventory.schema.json.").strip()
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = deepcopy(definitions[ref.removeprefix("#/$defs/")])
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return _inline({**target, **rest}, definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, definitions) for value in node]
    return node


class JobRunOut(BaseModel):
    id: int
    job: str
    slot: str = Field(description="the trigger time the run belongs to")
    attempt: int
    owner: str = Field(description="the scheduler instance that ran it")
    started_at: str
    finished_at: str | None
    duration_seconds: float | None
    outcome: str = Field(description="running, ok, failed, missed or abandoned")
    detail: str | None = Field(description="the job's summary, or the error when it failed")


class JobRunsOut(BaseModel):
    runs: list[JobRunOut]
