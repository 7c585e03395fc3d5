"""JSON Schema validation of YAML documents, with each error mapped to its file:line:col.

The policy schema (``policy.schema.json``, next to this module and linked from
``policies/policy.schema.json`` for editors) is the single description of the format's shape.
jsonschema finds the errors; this module turns each into one sentence at the right place.
An ``x-expected`` keyword in a subschema says, in words, what a ``pattern`` expects.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from service.policy.yamlsource import Document, PathPart, Problem

POLICY_SCHEMA = "policy.schema.json"
CASE_SCHEMA = "case.schema.json"

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string",
               "boolean": "true or false", "integer": "a whole number", "number": "a number",
               "null": "null"}


@cache
def load_schema(name: str = POLICY_SCHEMA) -> dict[str, Any]:
    """A schema shipped with this package (read once)."""
    return json.loads(resources.files("service.policy").joinpath(name).read_text("utf-8"))


@cache
def _validator(name: str) -> Draft202012Validator:
    """A validator whose ``$ref``s may point into any schema shipped here (by ``$id``)."""
    shipped = [load_schema(POLICY_SCHEMA), load_schema(CASE_SCHEMA)]
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in shipped)
    return Draft202012Validator(load_schema(name), registry=registry)


def field_name(path: tuple[PathPart, ...] | list[PathPart]) -> str:
    """``('waivers', 0, 'expires')`` -> ``waivers[0].expires``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _expected_types(value: Any) -> str:
    types = value if isinstance(value, list) else [value]
    return " or ".join(_TYPE_NAMES.get(t, t) for t in types)


def _error_problems(document: Document, error: ValidationError) -> list[Problem]:
    path = list(error.absolute_path)
    name = field_name(path)
    kind = error.validator
    if "propertyNames" in error.absolute_schema_path:
        key = error.instance
        expected = error.schema.get("x-expected")
        choices = error.schema.get("enum")
        reason = (f"expected one of: {', '.join(map(str, choices))}" if choices else
                  f"expected {expected}")
        return [document.problem([*path, key], f"{field_name([*path, key])}: key {key!r} is "
                                 f"not {expected or 'allowed here'}; {reason}", at_key=True)]
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        where = "" if not path else f" in {name}"
        return [document.problem([*path, key], f"unknown field '{key}'{where}; expected one of: "
                                 f"{', '.join(known)}", at_key=True)
                for key in error.instance if key not in known]
    if kind == "required":
        return [document.problem(path, f"{name}: missing required field '{key}'")
                for key in error.validator_value if key not in error.instance]
    if kind == "type":
        message = (f"{name}: expected {_expected_types(error.validator_value)}, "
                   f"got {_describe(error.instance)}")
    elif kind == "const":
        message = f"{name}: expected {error.validator_value!r}, got {_describe(error.instance)}"
    elif kind == "enum":
        what = error.schema.get("x-expected", "one of the allowed values")
        message = (f"{name}: {_describe(error.instance)} is not {what}; expected one of: "
                   f"{', '.join(map(str, error.validator_value))}")
    elif kind == "pattern":
        expected = error.schema.get("x-expected", f"text matching {error.validator_value}")
        message = f"{name}: expected {expected}, got {_describe(error.instance)}"
    elif kind in ("minItems", "minLength", "minProperties"):
        message = f"{name}: must not be empty"
    elif kind == "maxLength":
        message = f"{name}: must be at most {error.validator_value} characters long"
    else:
        message = f"{name}: {error.message}"
    return [document.problem(path, message)]


def schema_problems(document: Document, schema: str = POLICY_SCHEMA) -> list[Problem]:
    """Every schema error of one document, as sorted, de-duplicated problems."""
    problems: set[Problem] = set()
    for error in _validator(schema).iter_errors(document.data):
        problems.update(_error_problems(document, error))
    return sorted(problems, key=Problem.sort_key)
