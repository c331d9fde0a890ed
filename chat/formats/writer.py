"""Atomic JSONL writer for canonical rows (PreferencePair / Conversation / Document .to_dict), one per line."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from chat.errors import ConfigError


def canonical_row(record: Any) -> dict[str, Any]:
    """The on-disk row of a record: its `to_dict()` (a plain dict is written as it is)."""
    if isinstance(record, dict):
        return record
    to_dict = getattr(record, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"cannot write a {type(record).__name__} as a JSONL row (it has no to_dict)")
    return to_dict()


def write_jsonl(records: Iterable[Any], path: str | Path) -> int:
    """Write records as UTF-8 JSON Lines (gzip when `path` ends in .gz) and return how many.

    The rows go to a temporary file beside `path` that replaces it only when every record was
    written, so an error while producing the records (an invalid input row) leaves no partial
    file and an existing `path` untouched. A path that cannot be written is a ConfigError.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(path, exc) from None
    count = 0
    try:
        with os.fdopen(descriptor, "wb") as raw:
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else raw
            for record in records:
                line = json.dumps(canonical_row(record), ensure_ascii=False, default=str)
                _write(stream, line.encode("utf-8") + b"\n", path)
                count += 1
            try:
                if stream is not raw:
                    stream.close()
                raw.flush()
                os.fsync(raw.fileno())
                os.chmod(temporary, 0o666 & ~_umask())
                os.replace(temporary, path)
            except OSError as exc:
                raise _unwritable(path, exc) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


def _write(stream: BinaryIO, data: bytes, path: Path) -> None:
    try:
        stream.write(data)
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"cannot write {path}: {exc.strerror or exc}")


def _umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    current = os.umask(0o022)
    os.umask(current)
    return current
