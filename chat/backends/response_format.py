"""OpenAI `response_format` values: checking their shape and whether a reply satisfies one (a JSON Schema subset)."""

from __future__ import annotations

import json
from typing import Any

#: JSON Schema keywords that only annotate a schema; the validator accepts and ignores them.
ANNOTATION_KEYWORDS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment"})
#: JSON Schema keywords `schema_mismatch` enforces; any other keyword in a schema is refused, never ignored.
VALIDATION_KEYWORDS = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties", "items",
                                 "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "anyOf"})

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def check_response_format(response_format: Any) -> None:
    """Raise ValueError naming the field unless `response_format` is `{"type": "text"}`, `{"type": "json_object"}`
    or `{"type": "json_schema", "json_schema": {"name": str, "schema": {...}, "strict"?: bool}}`."""
    if not isinstance(response_format, dict):
        raise ValueError(f"response_format: expected a mapping, got {type(response_format).__name__}")
    kind = response_format.get("type")
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise ValueError(f"response_format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise ValueError("response_format.json_schema: expected a mapping with 'name' and 'schema'")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ValueError("response_format.json_schema.name: expected a non-empty string")
    if not isinstance(spec.get("schema"), dict):
        raise ValueError("response_format.json_schema.schema: expected a JSON Schema object")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        raise ValueError("response_format.json_schema.strict: expected true or false")


def reply_mismatch(text: str, response_format: dict[str, Any] | None) -> str | None:
    """Why `text` does not satisfy `response_format` (e.g. `$.score: expected integer, got string`), or None."""
    if response_format is None or response_format.get("type") == "text":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at char {exc.pos})"
    if response_format["type"] == "json_object":
        return None if isinstance(value, dict) else f"expected a JSON object, got {_json_type(value)}"
    return schema_mismatch(value, response_format["json_schema"]["schema"])


def schema_mismatch(value: Any, schema: dict[str, Any], path: str = "$") -> str | None:
    """The first place where `value` breaks `schema`, as `<path>: <what>`, or None when it matches.

    Supports the keywords in VALIDATION_KEYWORDS; a schema using any other validation keyword raises
    ValueError, so a reply is never accepted against a constraint this checker cannot test."""
    unknown = sorted(set(schema) - VALIDATION_KEYWORDS - ANNOTATION_KEYWORDS)
    if unknown:
        raise ValueError(f"schema at {path}: unsupported keyword(s) {', '.join(unknown)} "
                         f"(supported: {', '.join(sorted(VALIDATION_KEYWORDS))})")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        unknown_types = [t for t in types if t not in _TYPES]
        if unknown_types:
            raise ValueError(f"schema at {path}: unknown type(s) {unknown_types}")
        if not any(_TYPES[t](value) for t in types):
            return f"{path}: expected {' or '.join(types)}, got {_json_type(value)}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"{path}: expected {schema['const']!r}, got {value!r}"
    if "anyOf" in schema and all(schema_mismatch(value, option, path) is not None for option in schema["anyOf"]):
        return f"{path}: matches none of the anyOf alternatives"
    if isinstance(value, dict):
        return _object_mismatch(value, schema, path)
    if isinstance(value, list):
        return _array_mismatch(value, schema, path)
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: string shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: string longer than {schema['maxLength']} characters"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value!r} is below the minimum {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value!r} is above the maximum {schema['maximum']!r}"
    return None


def _object_mismatch(value: dict[str, Any], schema: dict[str, Any], path: str) -> str | None:
    properties = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in value]
    if missing:
        return f"{path}: missing required field(s) {', '.join(missing)}"
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            problem = schema_mismatch(item, properties[name], where)
        elif schema.get("additionalProperties", True) is False:
            problem = f"{path}: unexpected field {name!r} (additionalProperties is false)"
        elif isinstance(schema.get("additionalProperties"), dict):
            problem = schema_mismatch(item, schema["additionalProperties"], where)
        else:
            problem = None
        if problem is not None:
            return problem
    return None


def _array_mismatch(value: list[Any], schema: dict[str, Any], path: str) -> str | None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"{path}: {len(value)} items, expected at least {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{path}: {len(value)} items, expected at most {schema['maxItems']}"
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problem = schema_mismatch(item, schema["items"], f"{path}[{index}]")
            if problem is not None:
                return problem
    return None


def _same(value: Any, option: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    return value == option and isinstance(value, bool) == isinstance(option, bool)


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value) and not (name == "integer" and isinstance(value, float)):
            return name
    return type(value).__name__
