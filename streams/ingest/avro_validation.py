"""Compile an Avro record schema into a fast validator for decoded events.

JSON events and Avro events are held to the same `schemas/*.avsc`. fastavro's generic validator
walks the schema for every datum; this compiles each field once into a small check, which is what
a parser on the hot path can afford. Only what the project's schemas use is supported: primitives,
enums, arrays, maps and nullable unions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any, str], Any]
"""Validate one value (the second argument names it in errors); return the normalised value."""

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class SchemaViolation(ValueError):
    """The datum does not fit the schema; the message says which field and why."""


def _integer(bounds: tuple[int, int], avro_type: str) -> Check:
    lo, hi = bounds

    def check(value: Any, name: str) -> int:
        if type(value) is not int:
            raise SchemaViolation(f"{name}: expected {avro_type}, got {_kind(value)}")
        if not lo <= value <= hi:
            raise SchemaViolation(f"{name}: {value} is out of range for {avro_type}")
        return value

    return check


def _double(value: Any, name: str) -> float:
    if type(value) is int:
        return float(value)
    if type(value) is not float:
        raise SchemaViolation(f"{name}: expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise SchemaViolation(f"{name}: {value} is not a finite number")
    return value


def _string(value: Any, name: str) -> str:
    if type(value) is not str:
        raise SchemaViolation(f"{name}: expected a string, got {_kind(value)}")
    return value


def _boolean(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise SchemaViolation(f"{name}: expected a boolean, got {_kind(value)}")
    return value


PRIMITIVES: dict[str, Check] = {
    "int": _integer(INT32, "int"),
    "long": _integer(INT64, "long"),
    "double": _double,
    "float": _double,
    "string": _string,
    "boolean": _boolean,
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", bool: "a boolean", str: "a string"}.get(
        type(value), type(value).__name__
    )


def compile_type(schema: Any) -> Check:
    if isinstance(schema, str):
        if schema not in PRIMITIVES:
            raise ValueError(f"unsupported Avro type {schema!r}")
        return PRIMITIVES[schema]
    if isinstance(schema, list):
        return _union(schema)
    kind = schema["type"]
    if kind == "enum":
        return _enum(schema["symbols"])
    if kind == "array":
        return _array(compile_type(schema["items"]))
    if kind == "map":
        return _map(compile_type(schema["values"]))
    if kind == "record":
        return compile_record(schema)
    return compile_type(kind)


def _union(branches: list[Any]) -> Check:
    others = [b for b in branches if b != "null"]
    if len(others) != 1:
        raise ValueError("only [null, T] unions are supported")
    inner = compile_type(others[0])
    nullable = "null" in branches

    def check(value: Any, name: str) -> Any:
        if value is None and nullable:
            return None
        return inner(value, name)

    return check


def _enum(symbols: list[str]) -> Check:
    allowed = frozenset(symbols)
    listing = " ".join(symbols)

    def check(value: Any, name: str) -> str:
        if value not in allowed or type(value) is not str:
            raise SchemaViolation(f"{name}: {value!r} is not one of: {listing}")
        return value

    return check


def _array(item: Check) -> Check:
    def check(value: Any, name: str) -> list[Any]:
        if type(value) is not list:
            raise SchemaViolation(f"{name}: expected a list, got {_kind(value)}")
        return [item(v, f"{name}[{i}]") for i, v in enumerate(value)]

    return check


def _map(values: Check) -> Check:
    def check(value: Any, name: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise SchemaViolation(f"{name}: expected an object, got {_kind(value)}")
        return {str(k): values(v, f"{name}.{k}") for k, v in value.items()}

    return check


def compile_record(schema: Mapping[str, Any]) -> Check:
    """A check for a whole record: required fields present, each field's type right.

    Fields the schema does not name are dropped, so that a producer on a newer schema version
    does not get its events rejected by an older worker.
    """
    fields: list[tuple[str, Check, bool, Any]] = []
    for f in schema["fields"]:
        has_default = "default" in f
        fields.append((f["name"], compile_type(f["type"]), has_default, f.get("default")))

    def check(value: Any, name: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise SchemaViolation(f"{name or 'event'}: expected an object, got {_kind(value)}")
        out: dict[str, Any] = {}
        for field_name, field_check, has_default, default in fields:
            if field_name in value:
                out[field_name] = field_check(value[field_name], field_name)
            elif has_default:
                out[field_name] = default
            else:
                raise SchemaViolation(f"missing required field {field_name!r}")
        return out

    return check
