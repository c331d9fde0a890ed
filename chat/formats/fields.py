"""Typed access to the fields of one source row; every problem is a ValidationError naming the field."""

from __future__ import annotations

import math
from typing import Any, Mapping

from chat.conversation import ValidationError

#: JSON names of Python types, for messages such as "expected a string, got number".
_JSON_NAMES: dict[type, str] = {
    str: "a string", int: "a number", float: "a number", bool: "true/false",
    list: "a list", dict: "an object", type(None): "null",
}

#: Values kept from a row's extra top-level keys when they are copied into `meta`.
SCALAR_TYPES = (str, int, float, bool, type(None))


def json_type(value: Any) -> str:
    """The JSON name of a value's type ("a string", "an object", ...)."""
    for python_type, name in _JSON_NAMES.items():
        if type(value) is python_type:
            return name
    return type(value).__name__


def joined(where: str, key: str | int) -> str:
    """Field path `where.key` (or `where[key]` for list indices)."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _expected_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = dict.fromkeys(_JSON_NAMES.get(t, t.__name__) for t in types)
    return " or ".join(names)


def _is_instance(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true/false is not a number here
    return isinstance(value, types)


def require(row: Mapping[str, Any], key: str, expected: type | tuple[type, ...], where: str = "") -> Any:
    """`row[key]`, which must be present and of the expected type."""
    name = joined(where, key)
    if key not in row:
        raise ValidationError(name, "missing field")
    value = row[key]
    if not _is_instance(value, expected):
        raise ValidationError(name, f"expected {_expected_name(expected)}, got {json_type(value)}")
    return value


def optional(row: Mapping[str, Any], key: str, expected: type | tuple[type, ...], default: Any = None,
             where: str = "") -> Any:
    """`row[key]` when present and not null, else `default`; a present value must have the expected type."""
    value = row.get(key)
    if value is None:
        return default
    if not _is_instance(value, expected):
        raise ValidationError(joined(where, key), f"expected {_expected_name(expected)}, got {json_type(value)}")
    return value


def require_text(row: Mapping[str, Any], key: str, where: str = "") -> str:
    """A non-empty string field."""
    value = require(row, key, str, where)
    if not value.strip():
        raise ValidationError(joined(where, key), "empty content")
    return value


def require_number(row: Mapping[str, Any], key: str, where: str = "") -> float:
    """A finite number field (JSON true/false is not a number)."""
    value = require(row, key, (int, float), where)
    if not math.isfinite(value):
        raise ValidationError(joined(where, key), f"expected a finite number, got {value!r}")
    return float(value)


def row_id(row: Mapping[str, Any], *keys: str) -> str:
    """The row's own id (first of `keys` holding a string or integer), or "" to use a content id."""
    for key in keys:
        value = row.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # Parquet/pandas often store integer ids as floats
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError(key, f"expected a string or integer id, got {json_type(value)}")
        if str(value).strip():
            return str(value)
    return ""


def scalar_extras(row: Mapping[str, Any], known: set[str] | frozenset[str]) -> dict[str, Any]:
    """Top-level keys that a reader does not interpret, kept for `meta` when their values are scalars."""
    return {key: value for key, value in row.items()
            if key not in known and isinstance(value, SCALAR_TYPES) and isinstance(key, str)}


def row_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's own `meta` object (canonical rows carry one), or an empty dict."""
    return dict(optional(row, "meta", dict, {}))
