"""The runner's files: the append-only JSONL sink of finished records, its error log and summary."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from chat.errors import ConfigError, InputError

try:  # POSIX advisory locks; without them two runs on one output are not detected.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


def errors_path(output: str | Path) -> Path:
    """`<output>.errors.jsonl`: items that failed (after retries) and are not finished yet."""
    return Path(f"{output}.errors.jsonl")


def summary_path(output: str | Path) -> Path:
    """`<output>.summary.json`: counts, usage and counters of the latest run."""
    return Path(f"{output}.summary.json")


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSONL line: UTF-8, non-ASCII kept as is, strict JSON (NaN/Infinity are refused).

    Raises ValueError for NaN/Infinity or text that cannot be UTF-8 (lone surrogates) and
    TypeError for values JSON cannot hold.
    """
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"record text is not valid Unicode ({exc.reason} at position {exc.start})") from None


def _complete_length(file: BinaryIO) -> int:
    """Bytes up to and including the last newline: what remains once a torn last line is dropped."""
    end = file.seek(0, os.SEEK_END)
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        file.seek(start)
        chunk = file.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _parse_line(path: Path, line_number: int, raw: bytes) -> dict[str, Any] | None:
    """A sink line as a record (None for a blank line); anything else is a corrupt sink."""
    if not raw.strip():
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(path, line_number, "", "not UTF-8 text; is this a turnwise output file?") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, line_number, "", f"not a JSON record ({exc.msg}); is this a turnwise output file?") from None
    if not isinstance(record, dict) or "id" not in record:
        raise InputError(path, line_number, "id", "record has no id; is this a turnwise output file?")
    return record


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete record of a sink, in file order; a torn last line (no newline) is ignored.

    A missing file has no records. A corrupt line elsewhere raises InputError naming it.
    """
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as file:
        complete = _complete_length(file)
        file.seek(0)
        line_number = 0
        while file.tell() < complete:
            raw = file.readline()
            line_number += 1
            record = _parse_line(path, line_number, raw)
            if record is not None:
                yield record


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a sink (torn last line ignored)."""
    return list(iter_records(path))


def unwritable(path: Path, exc: OSError) -> ConfigError:
    """The one-line error for an output that cannot be written (read-only, disk full, file too large)."""
    return ConfigError(f"cannot write the output {path}: {exc.strerror or exc}")


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one.

    A file that cannot be written raises ConfigError naming it (the old file stays as it was).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, indent=2, sort_keys=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise unwritable(path, exc) from None


class JsonlSink:
    """Append-only JSONL output of one job; knows the ids it already holds.

    Opening it locks the file (a second run on the same output is refused), truncates a torn
    last line left by a killed run, and collects the finished ids. `append` writes and flushes
    one record: once it returns, the record survives the process being killed. Every
    `fsync_every` records, and on close, the file is also fsynced (survives power loss).
    """

    def __init__(self, path: str | Path, *, fsync_every: int = 100):
        self.path = Path(path)
        self.fsync_every = max(1, fsync_every)
        self.finished_ids: set[str] = set()
        self.records_on_open = 0
        self.duplicate_ids_on_open = 0
        self._file: BinaryIO | None = None
        self._unsynced = 0
        self._created = False

    def __enter__(self) -> "JsonlSink":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        bad_input = exc_type is not None and issubclass(exc_type, InputError)
        self.close(quiet=exc_type is not None, discard_if_empty=bad_input)

    @property
    def created_empty(self) -> bool:
        """This sink created its file and has written nothing to it (yet)."""
        return self._created and not self.finished_ids

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not self.path.exists()
            file = self.path.open("a+b")
        except OSError as exc:
            raise unwritable(self.path, exc) from None
        try:
            self._lock(file)
            self._drop_torn_line(file)
            self._collect_finished(file)
        except BaseException:
            file.close()
            raise
        self._file = file

    def _lock(self, file: BinaryIO) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{self.path} is being written by another run; wait for it or choose another output") from None

    def _drop_torn_line(self, file: BinaryIO) -> None:
        size = file.seek(0, os.SEEK_END)
        complete = _complete_length(file)
        if complete < size:
            logger.warning("%s: dropped a torn last line (%d bytes) left by an interrupted run; its item is redone",
                           self.path, size - complete)
            try:
                file.truncate(complete)
                file.flush()
                os.fsync(file.fileno())
            except OSError as exc:
                raise unwritable(self.path, exc) from None

    def _collect_finished(self, file: BinaryIO) -> None:
        file.seek(0)
        for line_number, raw in enumerate(file, 1):
            record = _parse_line(self.path, line_number, raw)
            if record is None:
                continue
            record_id = str(record["id"])
            if record_id in self.finished_ids:
                self.duplicate_ids_on_open += 1
            self.finished_ids.add(record_id)
            self.records_on_open += 1
        if self.duplicate_ids_on_open:
            logger.warning("%s: %d records repeat an earlier id", self.path, self.duplicate_ids_on_open)

    def append(self, record_id: str, line: bytes) -> None:
        """Append one encoded record (see `encode_record`) and hand it to the OS; `record_id` is finished.

        A write that fails (disk full, file too large, read-only) raises ConfigError naming the file, after
        cutting off the part of the line that was written, so the file still ends with a complete record.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: sink is not open")
        descriptor = self._file.fileno()
        try:
            start = os.lseek(descriptor, 0, os.SEEK_END)
            _write_all(descriptor, line)  # unbuffered: nothing is left behind in a buffer after a failure
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.ftruncate(descriptor, start)
            raise unwritable(self.path, exc) from None
        self.finished_ids.add(record_id)
        self._unsynced += 1
        if self._unsynced >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._file is not None and self._unsynced:
            try:
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise unwritable(self.path, exc) from None
            self._unsynced = 0

    def close(self, *, quiet: bool = False, discard_if_empty: bool = False) -> None:
        """Sync and close (releasing the lock); `quiet` (while another error propagates) ignores write errors;
        `discard_if_empty` removes the file if this sink created it and wrote nothing (a run stopped by bad input)."""
        if self._file is None:
            return
        try:
            self._file.flush()
            self.sync()
        except (OSError, ConfigError):
            if not quiet:
                raise
        finally:
            with contextlib.suppress(OSError):
                self._file.close()  # closing releases the lock
            self._file = None
            if discard_if_empty and self.created_empty:
                with contextlib.suppress(OSError):
                    self.path.unlink()


class ErrorLog:
    """`<output>.errors.jsonl`: one `{"id", "error", "time"}` line per failed item.

    On open and on close, entries of items that have since finished are dropped, so the file lists
    the items still failing (an item that fails in several runs has one entry per run). The file is created
    on the first error and removed when no entry is left.
    """

    def __init__(self, path: str | Path, finished_ids: set[str]):
        self.path = Path(path)
        self.finished_ids = finished_ids  # shared with the sink, so it grows as records are written
        try:
            self.entries_on_open = self._compact()
        except OSError as exc:
            raise unwritable(self.path, exc) from None
        self._file: BinaryIO | None = None

    def __enter__(self) -> "ErrorLog":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(quiet=exc_type is not None)

    def _compact(self) -> int:
        """Drop entries of finished items (and a torn last line); remove the file if none is left."""
        if not self.path.exists():
            return 0
        kept: list[bytes] = []
        changed = False
        with self.path.open("rb") as file:
            for raw in file:
                try:
                    entry = json.loads(raw.decode("utf-8")) if raw.endswith(b"\n") else None
                except (UnicodeDecodeError, json.JSONDecodeError):
                    entry = None
                if not isinstance(entry, dict) or str(entry.get("id")) in self.finished_ids:
                    changed = True
                    continue
                kept.append(raw)
        if not kept:
            self.path.unlink()
        elif changed:
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with temporary.open("wb") as file:
                file.writelines(kept)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        return len(kept)

    def append(self, item_id: str, error: str) -> None:
        entry = {"id": item_id, "error": error, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            descriptor = self._file.fileno()
            start = os.lseek(descriptor, 0, os.SEEK_END)
            try:
                _write_all(descriptor, line)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(descriptor, start)
                raise
        except OSError as exc:
            raise unwritable(self.path, exc) from None

    def close(self, *, quiet: bool = False) -> None:
        """Sync, close and compact; `quiet` (while another error propagates) ignores write errors."""
        try:
            if self._file is not None:
                try:
                    os.fsync(self._file.fileno())
                finally:
                    self._file.close()
                    self._file = None
            self._compact()
        except OSError as exc:
            if not quiet:
                raise unwritable(self.path, exc) from None
