"""The runner's files: torn-line recovery, corrupt sinks, locking, the error log, atomic summaries."""

from __future__ import annotations

import json

import pytest

from chat.errors import ConfigError, InputError
from chat.runner import ErrorLog, JsonlSink, encode_record, read_records, write_json_atomic


def write_lines(path, *lines: str, tail: str = "") -> None:
    path.write_text("".join(line + "\n" for line in lines) + tail, encoding="utf-8")


def test_open_truncates_a_torn_last_line_and_collects_finished_ids(tmp_path):
    path = tmp_path / "out.jsonl"
    write_lines(path, '{"id": "a"}', '{"id": "b"}', tail='{"id": "c", "text": "half')
    with JsonlSink(path) as sink:
        assert sink.finished_ids == {"a", "b"}
        sink.append("c", encode_record({"id": "c", "text": "whole"}))
    assert path.read_text(encoding="utf-8") == '{"id": "a"}\n{"id": "b"}\n{"id": "c", "text": "whole"}\n'


def test_torn_line_without_any_newline_leaves_an_empty_sink(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a", "te')
    with JsonlSink(path) as sink:
        assert sink.finished_ids == set()
    assert path.read_bytes() == b""


def test_read_records_ignores_a_torn_last_line_without_changing_the_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_lines(path, '{"id": "a", "n": 1}', tail='{"id": "b"')
    before = path.read_bytes()
    assert read_records(path) == [{"id": "a", "n": 1}]
    assert path.read_bytes() == before


def test_read_records_of_a_missing_file_is_empty(tmp_path):
    assert read_records(tmp_path / "nothing.jsonl") == []


def test_a_corrupt_line_before_the_end_names_path_and_line(tmp_path):
    path = tmp_path / "out.jsonl"
    write_lines(path, '{"id": "a"}', "not json", '{"id": "c"}')
    with pytest.raises(InputError, match=r"out\.jsonl:2: not a JSON record"):
        JsonlSink(path).open()
    with pytest.raises(InputError, match=r"out\.jsonl:2: "):
        read_records(path)


def test_a_record_without_id_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    write_lines(path, '{"id": "a"}', '{"text": "no id"}')
    with pytest.raises(InputError, match=r"out\.jsonl:2: id: record has no id"):
        JsonlSink(path).open()


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlSink(path):
        with pytest.raises(ConfigError, match="being written by another run"):
            JsonlSink(path).open()
    with JsonlSink(path):  # the lock goes with the first sink
        pass


def test_an_appended_record_is_in_the_file_before_close(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path, fsync_every=1000)
    sink.open()
    sink.append("a", encode_record({"id": "a"}))
    assert sink.finished_ids == {"a"}
    assert read_records(path) == [{"id": "a"}]
    sink.close()


def test_encode_record_keeps_unicode_and_refuses_nan():
    assert encode_record({"id": "é", "text": "中文"}) == '{"id": "é", "text": "中文"}\n'.encode("utf-8")
    with pytest.raises(ValueError):
        encode_record({"id": "a", "score": float("nan")})
    with pytest.raises(ValueError, match="not valid Unicode"):
        encode_record({"id": "a", "text": "\udc80"})


def test_error_log_keeps_only_items_still_unfinished(tmp_path):
    path = tmp_path / "out.jsonl.errors.jsonl"
    write_lines(path, '{"id": "a", "error": "E: 1"}', '{"id": "b", "error": "E: 2"}', tail='{"id": "c"')
    with ErrorLog(path, finished_ids={"a"}) as log:
        assert log.entries_on_open == 1
        log.append("d", "RuntimeError: boom")
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [entry["id"] for entry in entries] == ["b", "d"]
    assert entries[1]["error"] == "RuntimeError: boom" and entries[1]["time"].endswith("+00:00")


def test_error_log_file_is_removed_once_every_item_has_finished(tmp_path):
    path = tmp_path / "out.jsonl.errors.jsonl"
    write_lines(path, '{"id": "a", "error": "E: 1"}')
    with ErrorLog(path, finished_ids={"a"}):
        pass
    assert not path.exists()


def test_write_json_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.summary.json"
    write_json_atomic(path, {"n": 1})
    write_json_atomic(path, {"n": 2, "text": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"n": 2, "text": "é"}
    assert [p.name for p in path.parent.iterdir()] == ["out.summary.json"]
