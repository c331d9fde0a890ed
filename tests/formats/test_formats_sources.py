"""Where rows come from: JSON lists and objects, JSONL, gzip, Parquet, .txt, hub ids; line numbers; loaders; limits."""

from __future__ import annotations

import gzip
import json

import datasets
import pyarrow
import pyarrow.parquet as parquet
import pytest

from chat.errors import ConfigError, InputError
from chat.formats import (
    DatasetReader, detect_format, load_conversations, load_documents, load_judge_prompts, load_pairs, read_records,
)
from formats_helpers import FIXTURES, pair_row, write_rows


def error_of(callable_, *args, **kwargs) -> str:
    with pytest.raises(InputError) as caught:
        result = callable_(*args, **kwargs)
        list(result) if result is not None else None
    return str(caught.value)


def test_json_list_rows_carry_their_start_line_and_element_index(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([pair_row(id="a"), pair_row(id="b")], indent=2))
    results = list(DatasetReader(path))
    starts = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line == "  {"]
    assert [r.line for r in results] == starts
    assert [r.records[0].id for r in results] == ["a", "b"]


def test_single_json_object_file_is_one_row(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(pair_row(id="only")))
    assert [p.id for p in load_pairs(path)] == ["only"]


def test_json_lines_saved_as_json_are_read_line_by_line(tmp_path):
    path = write_rows(tmp_path / "rows.json", [pair_row(id="a"), pair_row(id="b")])
    assert [p.id for p in load_pairs(path)] == ["a", "b"]


def test_broken_json_list_reports_the_line_of_the_syntax_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"chosen": [],\n  "rejected": ]\n}\n]')
    assert error_of(read_records, path, on_error="skip") == f"{path}:3: file: invalid JSON: Expecting value at column 15"


def test_utf8_bom_and_blank_lines_are_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(pair_row(id="a")).encode() + b"\n\n  \n" + json.dumps(pair_row(id="b")).encode())
    assert [p.id for p in load_pairs(path)] == ["a", "b"]


def test_gzip_is_recognised_by_content(tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(pair_row(id="z")) + "\n")
    assert [p.id for p in load_pairs(path)] == ["z"]


def test_truncated_gzip_is_an_input_error(tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(pair_row()) + "\n").encode() * 200)[:300])
    assert ": file: cannot read:" in error_of(read_records, path)


def test_non_utf8_json_file_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[\n{"instruction": "caf\xe9"}\n]')
    assert error_of(read_records, path) == f"{path}:2: file: not valid UTF-8: byte 0xe9 at column 21"


def test_parquet_rows_are_numbered_from_one(tmp_path):
    path = tmp_path / "pairs.parquet"
    rows = [pair_row(id="a"), pair_row("  ", id="b"), pair_row(id="c")]
    parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    rejects: list = []
    assert [p.id for p in load_pairs(path, on_error="skip", rejects=rejects)] == ["a", "c"]
    assert [(r["line"], r["field"]) for r in rejects] == [(2, "chosen[1].content")]
    assert error_of(read_records, path) == f"{path}:2: chosen[1].content: empty content"


def test_text_file_is_one_document(tmp_path):
    [document] = load_documents(FIXTURES / "paris.txt")
    assert document.title == "paris" and document.text.startswith("Paris is the capital")
    assert document.meta == {"file": "paris.txt"} and detect_format(FIXTURES / "paris.txt") == "documents"


def test_hub_id_loads_through_datasets_with_the_split(monkeypatch):
    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_list([pair_row(id="h1", source="hub"), pair_row(id="h2", source="hub")])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs = load_pairs("Skywork/Skywork-Reward-Preference-80K-v0.2", split="test")
    assert calls == [("Skywork/Skywork-Reward-Preference-80K-v0.2", "test")]
    assert [(p.id, p.meta["source"]) for p in pairs] == [("h1", "hub"), ("h2", "hub")]


def test_unreachable_hub_id_is_one_input_error(monkeypatch):
    def offline(name, split):
        raise ConnectionError("Couldn't reach 'org/name' on the Hub (OfflineModeIsEnabled)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    message = error_of(read_records, "org/name")
    assert message.startswith("org/name: source: cannot load hub dataset (split 'train'): ConnectionError: "
                              "Couldn't reach 'org/name' on the Hub (OfflineModeIsEnabled);")
    assert "\n" not in message


def test_missing_local_file_is_not_taken_for_a_hub_id(tmp_path):
    assert error_of(read_records, "data/pairs.jsonl") == "data/pairs.jsonl: file: no such file"
    assert error_of(read_records, tmp_path) == f"{tmp_path}: file: is a directory (pass a data file)"


def test_unknown_format_name_and_on_error_are_config_errors(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [pair_row()])
    with pytest.raises(ConfigError, match="unknown format 'nope'"):
        read_records(path, "nope")
    with pytest.raises(ConfigError, match="on_error must be one of fail, skip"):
        read_records(path, on_error="ignore")


def test_loading_the_wrong_kind_is_an_input_error(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [pair_row()])
    assert error_of(load_conversations, path) == f"{path}: format: format 'trl' holds preference pairs, not conversations"


def test_limit_caps_records_and_stops_reading(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [pair_row(id="a"), pair_row(id="b"), "{broken"])
    assert [p.id for p in read_records(path, limit=2)] == ["a", "b"]


def test_detection_looks_past_unreadable_first_rows(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", ["{broken", pair_row(id="a")])
    rejects: list = []
    assert [p.id for p in read_records(path, on_error="skip", rejects=rejects)] == ["a"]
    assert rejects[0]["line"] == 1 and rejects[0]["raw"] == "{broken"


def test_file_of_only_broken_rows_reports_the_first(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", ["{broken", "[1]"])
    assert error_of(read_records, path) == f"{path}:1: row: invalid JSON: Expecting property name enclosed in double quotes at column 2"


def test_mt_bench_answers_join_questions_from_the_parent_folder():
    answers = load_conversations(FIXTURES / "fastchat/mt_bench/model_answer/tiny-model.jsonl")
    assert [a.id for a in answers] == ["ans-81", "ans-111"]
    assert [m.content for m in answers[0].messages] == ["Write a haiku about rain.", "Drops on the window",
                                                        "Now make it about snow.", "Flakes on the window"]
    assert answers[1].ends_with_user is False and answers[1].meta["next_user_turns"] == ["And times 4?"]
    assert answers[0].meta["model_id"] == "tiny-model" and answers[1].meta["category"] == "math"


def test_mt_bench_answers_without_question_file_say_where_they_looked(tmp_path):
    path = write_rows(tmp_path / "answers.jsonl", [{"question_id": 1, "model_id": "m", "choices": [{"turns": ["a"]}]}])
    message = error_of(read_records, path)
    assert message.startswith(f"{path}: format: no question.jsonl found in {tmp_path} or {tmp_path.parent}")


def test_mt_bench_answer_to_an_unknown_question_is_invalid(tmp_path):
    write_rows(tmp_path / "question.jsonl", [{"question_id": 1, "category": "c", "turns": ["q1", "q2"]}])
    path = write_rows(tmp_path / "answers.jsonl", [{"question_id": 2, "model_id": "m", "choices": [{"turns": ["a"]}]}])
    assert error_of(read_records, path) == f"{path}:1: question_id: no question 2 in {tmp_path / 'question.jsonl'}"


def test_judge_prompts_load_as_templates(shared_data):
    templates = {t.name: t for t in load_judge_prompts(shared_data / "mt_bench/judge_prompts.jsonl")}
    assert templates["single-v1"].placeholders == ("question", "answer")
    assert templates["pair-math-v1-multi-turn"].multi_turn and templates["pair-math-v1-multi-turn"].reference_based
    assert templates["pair-v2"].output_format == "[[A]]" and templates["pair-v2"].type == "pairwise"
