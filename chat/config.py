"""TRL-style run configs: a dataclass whose fields carry help text, loaded from YAML plus CLI overrides."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from chat.errors import ConfigError

C = TypeVar("C")

#: default of every generated option: "the user did not type this flag" (the YAML value or field default applies)
UNSET = object()


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add `--config` and one `--field` option per dataclass field (help text from field metadata).

    Options default to a sentinel so that only the flags the user typed override the YAML file.
    """
    parser.add_argument("--config", type=Path, help="YAML file with field values (CLI flags override it)")
    group = parser.add_argument_group(f"{cls.__name__} fields")
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind, is_list = _field_type(cls, f)
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = f"{help_text} (default: {default!r})" if help_text else f"(default: {default!r})"
        flag = f"--{f.name}"
        if kind is bool:
            group.add_argument(flag, type=_parse_bool, default=UNSET, metavar="BOOL", help=help_text)
        elif is_list:
            group.add_argument(flag, type=kind, nargs="*", default=UNSET, help=help_text)
        else:
            choices = f.metadata.get("choices")
            group.add_argument(flag, type=kind, default=UNSET, choices=choices, help=help_text)


def add_config_command(subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str,
                       config_class: str, func: Callable[[argparse.Namespace], int | None]) -> None:
    """A subcommand whose options come from a dataclass imported only when the command runs.

    `config_class` is "module:Class". Importing config classes that subclass TRL's (hundreds of fields,
    torch, trl) would make every `turnwise` start slow; here the subcommand takes its arguments raw,
    and the full parser (with `--help` listing every field) is built when it is invoked.
    """
    parser = subparsers.add_parser(name, help=help, description=description, add_help=False)

    def run(namespace: argparse.Namespace) -> int | None:
        module_name, class_name = config_class.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        full = argparse.ArgumentParser(prog=parser.prog, description=description)
        add_dataclass_arguments(full, cls)
        args = full.parse_args(namespace.extra_args)
        args.verbose = getattr(namespace, "verbose", 0)
        return func(args)

    # `turnwise`'s entry point hands the arguments it did not recognise to commands that set `takes_extra_args`
    parser.set_defaults(func=run, takes_extra_args=True)


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Build `cls` from `args.config` (YAML) and the flags the user typed."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        values.update(load_yaml(args.config))
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for name in names:
        value = getattr(args, name, UNSET)
        if value is not UNSET:
            values[name] = value
    return build_config(cls, values, source=str(args.config) if getattr(args, "config", None) else "command line")


def build_config(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Instantiate `cls` from a mapping, rejecting unknown keys with a message naming the source."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)} for {cls.__name__}")
    coerced = {}
    for key, value in values.items():
        kind, is_list = _field_type(cls, names[key])
        coerced[key] = _coerce(value, kind, is_list, f"{source}: {key}")
    try:
        return cls(**coerced)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def check_backend_roles(backends: Any, known: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> None:
    """Reject a `backends:` mapping that is empty or names roles the generator does not have."""
    if not isinstance(backends, dict) or not backends:
        raise ConfigError("backends: expected a mapping of role -> backend spec")
    unknown = sorted(str(role) for role in backends
                     if role not in known and not any(str(role).startswith(p) and str(role)[len(p):].isdigit()
                                                      for p in prefixes))
    if unknown:
        raise ConfigError(f"backends: unknown role(s) {', '.join(unknown)} (known: {', '.join(known)}"
                          + (f", {', '.join(p + 'N' for p in prefixes)}" if prefixes else "") + ")")


def check_run_fields(config: Any) -> None:
    """Validate the fields every LLM-driven job config shares: max_tokens, temperature, concurrency, limit,
    input_on_error (augment and generate configs call it from `validate`)."""
    if config.max_tokens < 1:
        raise ConfigError(f"max_tokens: expected at least 1, got {config.max_tokens}")
    if config.temperature < 0:
        raise ConfigError(f"temperature: expected >= 0, got {config.temperature}")
    if config.concurrency < 1:
        raise ConfigError(f"concurrency: expected at least 1, got {config.concurrency}")
    if config.limit is not None and config.limit < 0:
        raise ConfigError(f"limit: expected 0 or more, got {config.limit}")
    if config.input_on_error not in ("skip", "fail"):
        raise ConfigError(f"input_on_error: expected skip or fail, got {config.input_on_error!r}")


def _field_type(cls: type, f: dataclasses.Field) -> tuple[type, bool]:
    """(scalar type, is_list) of a field, unwrapping Optional and list annotations."""
    hints = typing.get_type_hints(cls)
    annotation = hints.get(f.name, str)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) > 1:  # e.g. TRL's `dict | str` fields: a YAML mapping or a JSON string, used as given
            return _Passthrough, False
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return (item if item in (int, float, str, bool) else str), True
    if origin is typing.Literal:
        return str, False
    if annotation in (int, float, str, bool):
        return annotation, False
    return _Passthrough, False


class _Passthrough:
    """Marker for fields whose YAML value is used as is (mappings, nested structures)."""

    def __new__(cls, value: Any) -> Any:  # used as argparse `type`: parse YAML text
        return yaml.safe_load(value)


def _coerce(value: Any, kind: type, is_list: bool, where: str) -> Any:
    if value is None or kind is _Passthrough:
        return value
    if is_list:
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, kind, False, where) for v in value]
    try:
        if kind is bool:
            return _parse_bool(value)
        if kind is float and isinstance(value, (int, float, str)):
            return float(value)
        if kind is int and (isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())):
            return int(value)
        if kind is str and isinstance(value, (str, int, float)):
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
