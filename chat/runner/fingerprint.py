"""Safe resume: the settings that decide an output's records, stored beside it as `OUT.fingerprint.json`.

A command that resumes `-o OUT` by item id checks first that OUT was written with the same settings (config
values that change records, prompt versions, backend identities); otherwise it refuses with one line naming
what changed, so results of two settings never end up in one file. `--overwrite` starts over.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable

from chat.errors import ConfigError
from chat.runner.sink import errors_path, summary_path, write_json_atomic

logger = logging.getLogger(__name__)

#: Config fields that change how a job runs but not the records it writes (`backends` specs carry timeouts,
#: retries and cache paths too: what changes answers is in the built backends' identities, `backend_identities`).
RUN_KNOBS = frozenset({"concurrency", "limit", "progress", "device", "rm_device", "embed_device", "input_format",
                       "input_on_error", "format", "backends"})


def settings_hash(payload: Any) -> str:
    """16 hex digits of sha256 over `payload` as sorted-key JSON (values JSON cannot hold as their str)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint_path(output: str | Path) -> Path:
    """`OUT.fingerprint.json`: the settings OUT was written with and their hash."""
    return Path(f"{output}.fingerprint.json")


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key in sorted(value, key=str):
            _flatten(f"{prefix}.{key}", value[key], into)
    else:
        into[prefix] = list(value) if isinstance(value, tuple) else value


def config_settings(prefix: str, config: Any, skip: Iterable[str] = RUN_KNOBS) -> dict[str, Any]:
    """A config dataclass as flat `prefix.field` settings (mappings flattened to `prefix.field.key`),
    leaving out the fields in `skip` (run knobs that do not change records)."""
    skipped = set(skip)
    settings: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        if field.name not in skipped:
            _flatten(f"{prefix}.{field.name}", getattr(config, field.name), settings)
    return settings


def backend_identities(backends: Any) -> dict[str, str]:
    """`backend.<role>` -> the backend's `cache_identity` (what changes its answers), for a role -> backend
    mapping or a dataclass of role fields (`backend.<role>.<i>` for a list of them; a role without a backend is
    left out)."""
    roles = backends.items() if isinstance(backends, Mapping) else (
        (field.name, getattr(backends, field.name)) for field in dataclasses.fields(backends))
    identities = {}
    for role, backend in roles:
        members = enumerate(backend) if isinstance(backend, (list, tuple)) else [(None, backend)]
        for index, member in members:
            if hasattr(member, "cache_identity"):
                identities[f"backend.{role}" + (f".{index}" if index is not None else "")] = member.cache_identity
    return identities


def sink_files(output: str | Path, sinks: Iterable[str] = ("",)) -> list[Path]:
    """The files a run on OUT writes: each sink `OUT<suffix>` with its errors log and summary."""
    files = []
    for suffix in sinks:
        sink = Path(f"{output}{suffix}")
        files += [sink, errors_path(sink), summary_path(sink)]
    return files


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def describe_change(output: Path, recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The one-line refusal: which settings OUT was written with and what this run has instead."""
    changed = sorted(key for key in set(recorded) | set(current) if recorded.get(key, ...) != current.get(key, ...))
    old = ", ".join(f"{key}={_shown(recorded[key]) if key in recorded else '<unset>'}" for key in changed)
    if len(changed) == 1:
        new = _shown(current[changed[0]]) if changed[0] in current else "<unset>"
    else:
        new = ", ".join(f"{key}={_shown(current[key]) if key in current else '<unset>'}" for key in changed)
    return (f"{output} was written with {old}, this run has {new}; pass --overwrite to start over or choose "
            "a new -o")


def _remove_outputs(output: Path, sinks: list[str]) -> None:
    for path in [*sink_files(output, sinks), fingerprint_path(output)]:
        if path.exists():
            logger.info("--overwrite: removing %s", path)
            try:
                path.unlink()
            except OSError as exc:
                raise ConfigError(f"--overwrite: cannot remove {path}: {exc.strerror or exc}") from None


def _recorded_settings(output: Path, sinks: list[str]) -> dict[str, Any] | None:
    """The settings OUT was written with; None while its sinks hold no records (nothing to mix with)."""
    if not any(path.is_file() and path.stat().st_size > 0 for path in (Path(f"{output}{s}") for s in sinks)):
        return None
    stored = fingerprint_path(output)
    if not stored.is_file():
        raise ConfigError(f"{output} has no {stored.name} (written before turnwise recorded run settings), so "
                          "resuming it could mix settings; pass --overwrite to start over or choose a new -o")
    try:
        recorded = json.loads(stored.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if not isinstance(recorded, dict):
        raise ConfigError(f"{stored}: unreadable fingerprint; pass --overwrite to start over or choose a new -o")
    return recorded


def _normalized(settings: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(settings), default=str))      # as the stored file holds them


def check_settings(output: str | Path, settings: Mapping[str, Any], *, sinks: Iterable[str] = ("",)) -> None:
    """The early part of `claim_output`, before backends or models are loaded: refuse when OUT holds records
    written with other values of `settings` (the config part of the fingerprint) or without a fingerprint.
    Writes nothing."""
    output = Path(output)
    recorded = _recorded_settings(output, list(sinks))
    settings = _normalized(settings)
    if recorded is not None and any(recorded.get(key, ...) != value for key, value in settings.items()):
        raise ConfigError(describe_change(output, {key: recorded[key] for key in settings if key in recorded},
                                          settings))


def claim_output(output: str | Path, settings: Mapping[str, Any], *, overwrite: bool = False,
                 sinks: Iterable[str] = ("",)) -> None:
    """Make OUT safe to resume with `settings` before anything is written to it.

    `overwrite` removes OUT, its side files (each sink of `sinks` with its errors log and summary) and its
    fingerprint first. An output whose sinks hold no records gets the fingerprint written (atomically); one
    with records resumes when its fingerprint matches and is refused with ConfigError otherwise, or when it
    has no fingerprint (written before turnwise stored one).
    """
    output = Path(output)
    sinks = list(sinks)
    if overwrite:
        _remove_outputs(output, sinks)
    settings = _normalized(settings)
    recorded = _recorded_settings(output, sinks)
    if recorded is None:
        write_json_atomic(fingerprint_path(output),
                          {"output": str(output), "hash": settings_hash(settings), "settings": settings})
    elif recorded != settings:
        raise ConfigError(describe_change(output, recorded, settings))


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """`--overwrite`: every command that resumes `-o OUT` takes it."""
    parser.add_argument("--overwrite", action="store_true",
                        help="remove OUT and its side files (errors, summary, seed/stage logs, fingerprint) and start "
                             "over; without it a rerun resumes OUT, and is refused if its settings differ")
