"""Property-based: corrupting the bytes of a valid file, or putting random JSON values into any field of any format,
gives either valid records or one InputError that names the file, the line and (for a row) the field; never another
exception. Covers the format readers, the runner's sink reader and the judge-verdict reader (tests/formats covers
the type of the error; this file pins down what the message names)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.errors import InputError
from chat.formats import FORMATS, load_conversations, load_documents, load_pairs, read_records
from chat.runner.sink import JsonlSink, iter_records
from judge.verdicts import read_judgments

USER, ASSISTANT = {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}
#: Three valid rows per JSONL format family, each row one line.
VALID_FILES: dict[str, list[dict[str, Any]]] = {
    "trl": [{"id": f"p{i}", "chosen": [USER, {**ASSISTANT, "content": f"{i}"}], "rejected": [USER, ASSISTANT]}
            for i in range(3)],
    "sharegpt": [{"id": f"c{i}", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": f"{i}"}]}
                 for i in range(3)],
    "alpaca": [{"instruction": f"Task {i}", "input": "", "output": "done"} for i in range(3)],
    "documents": [{"id": f"d{i}", "content": f"Document {i} text."} for i in range(3)],
}
JUDGMENTS = [{"id": f"p{i}", "judge": "j", "winner": "AB"[i % 2]} for i in range(3)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_lines(folder: str, name: str, data: bytes) -> Path:
    path = Path(folder) / name
    path.write_bytes(data)
    return path


def encode(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def assert_names_the_place(error: InputError, path: Path, lines: int, *, row_level: bool = True) -> None:
    """The error names this file, a line within it (for row errors), and is one line of text."""
    message = str(error)
    assert "\n" not in message, message
    assert error.path.endswith(path.name) and message.startswith(error.path), message
    if row_level and error.line is not None:
        assert 1 <= error.line <= lines, message
        assert message.startswith(f"{error.path}:{error.line}: "), message


@st.composite
def corruptions(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes replaced, deleted or inserted, or cut short."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["replace", "delete", "insert", "cut"]))
        byte = draw(st.integers(0, 255))
        if action == "replace" and data:
            data[position] = byte
        elif action == "delete" and data:
            del data[position]
        elif action == "insert":
            data.insert(position, byte)
        else:
            del data[position:]
    return bytes(data)


@SETTINGS
@given(st.data(), st.sampled_from(sorted(VALID_FILES)))
def test_corrupted_bytes_give_records_or_an_input_error_naming_file_and_line(data, family):
    original = encode(VALID_FILES[family])
    corrupted = data.draw(corruptions(original))
    with tempfile.TemporaryDirectory() as folder:
        path = write_lines(folder, "input.jsonl", corrupted)
        try:
            records = list(read_records(path, None if family != "alpaca" else "alpaca"))
        except InputError as error:
            assert_names_the_place(error, path, corrupted.count(b"\n") + 1)
        else:
            assert len(records) <= corrupted.count(b"\n") + 1


@SETTINGS
@given(st.data(), st.sampled_from(sorted(VALID_FILES)))
def test_a_random_value_in_any_field_names_that_field(data, family):
    rows = [dict(row) for row in VALID_FILES[family]]
    line = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from(sorted(rows[line])))
    rows[line][field] = data.draw(json_values)
    loader = {"trl": load_pairs, "sharegpt": load_conversations, "alpaca": load_conversations,
              "documents": load_documents}[family]
    with tempfile.TemporaryDirectory() as folder:
        path = write_lines(folder, "input.jsonl", encode(rows))
        try:
            loader(path, family)
        except InputError as error:
            assert_names_the_place(error, path, len(rows))
            assert error.line == line + 1, str(error)
            # chosen and rejected must have the same shape: breaking one may be reported on the other
            partner = {"chosen": "rejected", "rejected": "chosen"}.get(field, field)
            assert error.field.split("[")[0].split(".")[0] in (field, partner, "row", "id", "turns", "messages"), \
                str(error)


@SETTINGS
@given(st.data())
def test_a_corrupted_sink_is_read_up_to_a_torn_tail_or_named_by_line(data):
    original = b"".join(json.dumps({"id": f"i{i}", "value": i}).encode() + b"\n" for i in range(4))
    corrupted = data.draw(corruptions(original))
    with tempfile.TemporaryDirectory() as folder:
        path = write_lines(folder, "out.jsonl", corrupted)
        try:
            records = list(iter_records(path))
        except InputError as error:
            assert_names_the_place(error, path, corrupted.count(b"\n"))
            assert error.line is not None
        else:
            assert all(isinstance(record, dict) and "id" in record for record in records)
            # opening it for a resumed run keeps exactly those records (a torn tail is dropped)
            with JsonlSink(path) as sink:
                assert sink.records_on_open == len(records)
            assert path.read_bytes() == b"" or path.read_bytes().endswith(b"\n")


@SETTINGS
@given(st.data())
def test_random_values_in_judgments_give_an_input_error_naming_the_line(data):
    rows = [dict(row) for row in JUDGMENTS]
    line = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from(sorted(rows[line])))
    rows[line][field] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as folder:
        path = write_lines(folder, "verdicts.jsonl", encode(rows))
        try:
            read_judgments(path)
        except InputError as error:
            assert_names_the_place(error, path, len(rows))


def test_every_jsonl_family_here_is_a_registered_format():
    assert set(VALID_FILES) <= set(FORMATS.names())
    with tempfile.TemporaryDirectory() as folder:
        for family, rows in VALID_FILES.items():
            assert len(list(read_records(write_lines(folder, f"{family}.jsonl", encode(rows)), family))) == 3
        assert len(read_judgments(write_lines(folder, "verdicts.jsonl", encode(JUDGMENTS))).records) == 3
