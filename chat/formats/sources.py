"""Raw rows, numbered by line, from a local file (.json, .jsonl, .gz, .parquet, .txt) or a hub dataset id."""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from chat.errors import InputError
from chat.formats.base import SourceInfo

GZIP_MAGIC = b"\x1f\x8b"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_LOCAL_SUFFIXES = re.compile(r"\.(jsonl|ndjson|json|gz|parquet|txt|md|csv)$", re.IGNORECASE)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

#: File layouts by suffix (after an optional .gz).
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".text", ".md")


@dataclass
class SourceRow:
    """One row as read from the source, before any format is applied.

    `line` is the 1-based line where the row starts (for Parquet and hub datasets: the row
    number). `prefix` names the row inside its file when a line is not enough (a JSON list
    element: "[29]"). A row that could not be parsed carries `error` = (field, reason) and its
    text in `raw`.
    """

    line: int
    value: Any = None
    prefix: str = ""
    error: tuple[str, str] | None = None
    raw: Any = None


@dataclass
class RowSource:
    """A readable source: `rows()` streams SourceRows; `implied_format` is set when the file type alone decides it."""

    info: SourceInfo
    rows: Callable[[], Iterator[SourceRow]]
    implied_format: str | None = None


def open_source(source: str | Path, split: str = "train") -> RowSource:
    """The RowSource for a local path or, when `source` contains "/" and is no existing path, a hub dataset id."""
    name = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        raise InputError(name, None, "file", "is a directory (pass a data file)")
    if path.exists():
        return _local_source(name, path)
    if isinstance(source, str) and looks_like_hub_id(source):
        return RowSource(SourceInfo(name), lambda: _hub_rows(name, split))
    raise InputError(name, None, "file", "no such file")


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` without a data-file suffix (e.g. "Anthropic/hh-rlhf", "Skywork/Skywork-Reward-Preference-80K-v0.2")."""
    return bool(_HUB_ID.match(text)) and not _LOCAL_SUFFIXES.search(text)


def _local_source(name: str, path: Path) -> RowSource:
    info = SourceInfo(name, path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in PARQUET_SUFFIXES:
        return RowSource(info, lambda: _parquet_rows(name, path))
    if suffix in TEXT_SUFFIXES:
        return RowSource(info, lambda: _text_rows(name, path), implied_format="documents")
    if suffix in JSON_LINES_SUFFIXES:
        return RowSource(info, lambda: _json_lines_file_rows(name, path))
    return RowSource(info, lambda: _json_file_rows(name, path))


def _open_binary(name: str, path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it starts with the gzip magic number."""
    try:
        with path.open("rb") as probe:
            head = probe.read(2)
        return gzip.open(path, "rb") if head == GZIP_MAGIC else path.open("rb")
    except OSError as exc:
        raise InputError(name, None, "file", f"cannot open: {exc.strerror or exc}") from None


def _read_all(name: str, path: Path) -> bytes:
    with _open_binary(name, path) as handle:
        try:
            return handle.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(name, None, "file", f"cannot read: {exc}") from None


def _decode_file(name: str, data: bytes) -> str:
    """UTF-8 text of a whole file (a leading BOM dropped); a bad byte is reported with its line."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(name, line, "file", f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {column}") from None


def _json_lines_file_rows(name: str, path: Path) -> Iterator[SourceRow]:
    with _open_binary(name, path) as handle:
        yield from _json_lines(name, handle)


def _json_lines(name: str, lines: Any) -> Iterator[SourceRow]:
    """Rows of a JSON Lines byte stream; a line that is not UTF-8 or not JSON becomes an error row."""
    line_number = 0
    try:
        for line_number, raw in enumerate(lines, 1):
            if line_number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield SourceRow(line_number, error=("row", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"),
                                raw=raw.decode("utf-8", "backslashreplace").rstrip("\r\n"))
                continue
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield SourceRow(line_number, error=("row", f"invalid JSON: {exc.msg} at column {exc.colno}"), raw=text)
                continue
            except (ValueError, RecursionError) as exc:
                yield SourceRow(line_number, error=("row", f"invalid JSON: {_first_line(exc)}"), raw=text)
                continue
            yield SourceRow(line_number, value)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(name, line_number + 1, "file", f"cannot read: {exc}") from None


def _json_file_rows(name: str, path: Path) -> Iterator[SourceRow]:
    """Rows of a .json file: a list (one row per element), one object, or JSON Lines saved as .json."""
    data = _read_all(name, path)
    text = _decode_file(name, data)
    start = _skip_whitespace(text, 0)
    if start == len(text):
        return
    if text[start] == "[":
        yield from _json_list_rows(name, text, start)
        return
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        raise _json_error(name, text, start, exc) from None
    after = _skip_whitespace(text, end)
    if after == len(text):
        yield SourceRow(_line_at(text, start), value)
    elif "\n" not in text[start:end]:
        # Several one-line objects: JSON Lines in a file named .json.
        yield from _json_lines(name, iter(data.splitlines(keepends=True)))
    else:
        raise InputError(name, _line_at(text, after), "file", "invalid JSON: extra data after the top-level value")


def _json_list_rows(name: str, text: str, start: int) -> Iterator[SourceRow]:
    """Elements of a top-level JSON list, each with the line it starts on and its index as prefix.

    A syntax error ends the file (nothing after it can be located), so it raises for any on_error.
    """
    decoder = json.JSONDecoder()
    position = _skip_whitespace(text, start + 1)
    line, counted_to = 1 + text.count("\n", 0, position), position
    if text.startswith("]", position):
        _expect_end(name, text, position + 1)
        return
    index = 0
    while True:
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as exc:
            raise _json_error(name, text, position, exc) from None
        yield SourceRow(line, value, prefix=f"[{index}]")
        index += 1
        position = _skip_whitespace(text, end)
        if position == len(text):
            raise InputError(name, _line_at(text, position), "file", "invalid JSON: the list is not closed with ']'")
        if text[position] == "]":
            _expect_end(name, text, position + 1)
            return
        if text[position] != ",":
            raise InputError(name, _line_at(text, position), "file",
                             f"invalid JSON: expected ',' or ']' after list element {index - 1}")
        position = _skip_whitespace(text, position + 1)


def _expect_end(name: str, text: str, position: int) -> None:
    after = _skip_whitespace(text, position)
    if after != len(text):
        raise InputError(name, _line_at(text, after), "file", "invalid JSON: extra data after the top-level list")


def _json_error(name: str, text: str, position: int, exc: BaseException) -> InputError:
    if isinstance(exc, json.JSONDecodeError):
        return InputError(name, exc.lineno, "file", f"invalid JSON: {exc.msg} at column {exc.colno}")
    return InputError(name, _line_at(text, position), "file", f"invalid JSON: {_first_line(exc)}")


def _skip_whitespace(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _text_rows(name: str, path: Path) -> Iterator[SourceRow]:
    """A plain-text file is one row: the whole text as a document titled by the file name."""
    text = _decode_file(name, _read_all(name, path))
    if text.strip():
        yield SourceRow(1, {"title": path.name.split(".")[0], "content": text, "meta": {"file": path.name}})


def _parquet_rows(name: str, path: Path) -> Iterator[SourceRow]:
    import pyarrow
    import pyarrow.parquet as parquet

    number = 0
    try:
        parquet_file = parquet.ParquetFile(path)
        for batch in parquet_file.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                yield SourceRow(number, row)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise InputError(name, number + 1 if number else None, "file", f"cannot read Parquet: {_first_line(exc)}") from None


def _hub_rows(dataset_id: str, split: str) -> Iterator[SourceRow]:
    """Rows of a hub dataset through `datasets.load_dataset(id, split=split)`, numbered from 1."""
    try:
        import datasets

        dataset = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure to fetch or build the dataset is one clear input error
        raise InputError(dataset_id, None, "source",
                         f"cannot load hub dataset (split {split!r}): {type(exc).__name__}: {_first_line(exc)}; "
                         "without network access, download it elsewhere and pass the local file") from None
    for number, row in enumerate(dataset, 1):
        yield SourceRow(number, dict(row))
