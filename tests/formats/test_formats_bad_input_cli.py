"""Bad input through the real `turnwise data convert|inspect`: one `PATH:LINE: field: reason` line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from formats_helpers import pair_row, run_turnwise

GOOD = json.dumps(pair_row()).encode()
USER, ASSISTANT = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}


def row(chosen: list, rejected: list | None = None) -> bytes:
    return json.dumps({"chosen": chosen, "rejected": rejected if rejected is not None else [USER, ASSISTANT]}).encode()


#: case -> (line 2 of a JSONL file whose line 1 is valid, expected "LINE: field: reason").
BAD_ROWS: dict[str, tuple[bytes, str]] = {
    "broken JSON line": (b'{"chosen": [{"role": "user", "content": "hi"}',
                         "2: row: invalid JSON: Expecting ',' delimiter at column 46"),
    "missing field": (json.dumps({"chosen": [USER, ASSISTANT]}).encode(), "2: rejected: missing field"),
    "wrong type": (row([USER, ASSISTANT], [USER, {"role": "assistant", "content": 42}]),
                   "2: rejected[1].content: expected a string, got int"),
    "unknown role": (row([USER, {"role": "tool", "content": "x"}]),
                     "2: chosen[1].role: unknown role 'tool' (expected one of system, user, assistant)"),
    "empty content": (row([USER, {"role": "assistant", "content": "  "}]), "2: chosen[1].content: empty content"),
    "non-alternating roles": (row([USER, USER, ASSISTANT]),
                              "2: chosen[1].role: roles must alternate user/assistant: expected 'assistant', got 'user'"),
    "non-UTF-8 bytes": (b'{"chosen": "caf\xe9"}', "2: row: not valid UTF-8: byte 0xe9 at column 16"),
    "ends with a user turn": (row([USER, ASSISTANT, USER]),
                              "2: chosen: a preference conversation must end with an assistant message"),
    "not an object": (b"[1, 2]", "2: row: expected a JSON object, got a list"),
}


def assert_one_line_error(result, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [expected]


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_convert_fail_stops_at_the_bad_row_and_writes_nothing(tmp_path, case):
    bad_line, location = BAD_ROWS[case]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(GOOD + b"\n" + bad_line + b"\n" + GOOD + b"\n")
    result = run_turnwise("data", "convert", source, "-o", out, "--on-error", "fail")
    assert_one_line_error(result, f"{source}:{location}")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [source], "no temporary file may be left behind"


def test_convert_fail_keeps_an_existing_output_untouched(tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(GOOD + b"\n" + BAD_ROWS["empty content"][0] + b"\n")
    out.write_text("previous\n")
    result = run_turnwise("data", "convert", source, "-o", out)
    assert result.returncode == 2
    assert out.read_text() == "previous\n"


def test_convert_empty_file_is_an_error(tmp_path):
    source, out = tmp_path / "empty.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b"")
    result = run_turnwise("data", "convert", source, "-o", out)
    assert_one_line_error(result, f"{source}:1: file: empty file: no rows")
    assert not out.exists()


def test_convert_skip_sets_every_bad_row_aside_with_its_reason(tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [GOOD] + [BAD_ROWS[case][0] for case in sorted(BAD_ROWS)] + [GOOD, json.dumps(pair_row("Great!")).encode()]
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = run_turnwise("data", "convert", source, "-o", out, "--on-error", "skip")
    assert result.returncode == 0, result.stderr
    rejects_path = Path(f"{out}.rejects.jsonl")
    assert result.stdout.strip() == f"converted 3 rows, rejected {len(BAD_ROWS)} -> {rejects_path}"
    assert len(out.read_text().splitlines()) == 3
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    expected = [BAD_ROWS[case][1].split(": ", 2) for case in sorted(BAD_ROWS)]
    assert [[str(r["line"]), r["field"], r["reason"]] for r in rejects] == [
        [str(i + 2), field, reason] for i, (_, field, reason) in enumerate(expected)]
    assert all(set(r) == {"line", "field", "reason", "raw"} for r in rejects)


def test_convert_json_list_names_the_element_and_its_line(tmp_path):
    source, out = tmp_path / "pairs.json", tmp_path / "out.jsonl"
    bad = pair_row("   ")
    source.write_text(json.dumps([pair_row(), bad], indent=1))
    result = run_turnwise("data", "convert", source, "-o", out)
    line = source.read_text().splitlines().index(" {", 2) + 1  # the second element
    assert_one_line_error(result, f"{source}:{line}: [1].chosen[1].content: empty content")
    assert not out.exists()


def test_convert_missing_file_and_offline_hub_id_are_one_line_errors(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = run_turnwise("data", "convert", missing, "-o", tmp_path / "out.jsonl")
    assert_one_line_error(result, f"{missing}: file: no such file")
    offline = run_turnwise("data", "inspect", "no-such-org/no-such-dataset",
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                                "HF_HOME": str(tmp_path / "hf")})
    assert offline.returncode == 2 and "Traceback" not in offline.stderr
    assert offline.stderr.strip().splitlines()[-1].startswith(
        "no-such-org/no-such-dataset: source: cannot load hub dataset (split 'train'):")


def test_inspect_counts_invalid_rows_instead_of_stopping(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([GOOD] + [BAD_ROWS[case][0] for case in sorted(BAD_ROWS)]) + b"\n")
    result = run_turnwise("data", "inspect", source, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["records"], summary["invalid_rows"]) == (1 + len(BAD_ROWS), 1, len(BAD_ROWS))
    assert summary["invalid_examples"][0] == f"{source}:{BAD_ROWS[sorted(BAD_ROWS)[0]][1]}"


def _big_row(megabytes: int) -> bytes:
    answer = "word " * (megabytes * 1024 * 1024 // 5)
    return json.dumps(pair_row(answer)).encode()


def test_convert_loads_a_50_mb_single_row_quickly(tmp_path):
    source, out = tmp_path / "big.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(_big_row(50) + b"\n")
    assert source.stat().st_size > 50 * 1024 * 1024
    started = time.monotonic()
    result = run_turnwise("data", "convert", source, "-o", out)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"converted 1 rows -> {out}"
    assert len(json.loads(out.read_text())["chosen"][1]["content"]) >= 50 * 1024 * 1024 - 5
    assert elapsed < 30


def test_convert_rejects_a_broken_50_mb_single_row_with_one_line(tmp_path):
    source, out = tmp_path / "big.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(_big_row(50)[:-2] + b"\n")  # cut off the closing brackets
    started = time.monotonic()
    result = run_turnwise("data", "convert", source, "-o", out)
    assert time.monotonic() - started < 30
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{source}:1: row: invalid JSON:") and len(line) < 300
    assert not out.exists()
