"""Canonical JSONL round trips: write_jsonl, then `datasets.load_dataset("json")` or our own reader, gives the same rows."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest

from chat.conversation import PreferencePair
from chat.errors import ConfigError, InputError
from chat.formats import detect_format, load_conversations, load_documents, load_pairs, read_records, write_jsonl
from formats_helpers import FIXTURES, pair_row, write_rows

SHARED_PAIR_FILES = [
    "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz",
    "preference/rmb-pairwise/Helpfulness_Reasoning_Analytical_Reasoning.json.gz",
    "judgments/alpaca_eval/Mistral-7B-Instruct-v0.2.alpaca_eval_gpt4_turbo_fn.annotations.json.gz",
]


def load_with_datasets(path, cache_dir):
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache_dir))


@pytest.mark.parametrize("relative", SHARED_PAIR_FILES)
def test_datasets_loads_written_pairs_unchanged(shared_data, tmp_path, relative):
    pairs = load_pairs(shared_data / relative, on_error="skip", rejects=[])
    out = tmp_path / "pairs.jsonl"
    assert write_jsonl(pairs, out) == len(pairs)
    loaded = load_with_datasets(out, tmp_path / "cache")
    assert loaded.num_rows == len(pairs)
    assert loaded["id"] == [p.id for p in pairs]
    assert loaded["chosen"] == [p.chosen.to_messages() for p in pairs]
    assert loaded["rejected"] == [p.rejected.to_messages() for p in pairs]


def test_written_pairs_read_back_identically_as_trl(shared_data, tmp_path):
    pairs = load_pairs(shared_data / SHARED_PAIR_FILES[1])
    out = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, out)
    assert detect_format(out) == "trl"
    assert [p.to_dict() for p in load_pairs(out)] == [p.to_dict() for p in pairs]


def test_self_made_pairs_with_system_prompt_and_meta_survive_datasets(tmp_path):
    rows = [pair_row(id="a", meta={"source": "fixture", "score": 0.5}),
            {"id": "b", "chosen": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
                                   {"role": "assistant", "content": "4"}],
             "rejected": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "5"}], "meta": {"source": "fixture", "score": 1.0}}]
    out = tmp_path / "pairs.jsonl"
    write_jsonl(load_pairs(write_rows(tmp_path / "in.jsonl", rows)), out)
    loaded = load_with_datasets(out, tmp_path / "cache")
    assert [dict(r) for r in loaded] == rows


def test_conversations_and_documents_round_trip_through_their_canonical_rows(shared_data, tmp_path):
    conversations = load_conversations(shared_data / "mt_bench_101/mtbench101.jsonl.gz", limit=50)
    write_jsonl(conversations, tmp_path / "conversations.jsonl")
    assert detect_format(tmp_path / "conversations.jsonl") == "sharegpt"
    assert [c.to_dict() for c in load_conversations(tmp_path / "conversations.jsonl")] == [c.to_dict() for c in conversations]
    documents = load_documents(shared_data / "multihop/longmit_text_corpus_200.jsonl.gz", limit=20)
    write_jsonl(documents, tmp_path / "documents.jsonl")
    assert [d.to_dict() for d in load_documents(tmp_path / "documents.jsonl")] == [d.to_dict() for d in documents]


def test_write_jsonl_writes_utf8_text_not_escapes(tmp_path):
    out = tmp_path / "pairs.jsonl"
    write_jsonl([PreferencePair.from_messages([{"role": "user", "content": "Grüße"}, {"role": "assistant", "content": "你好"}],
                                              [{"role": "user", "content": "Grüße"}, {"role": "assistant", "content": "hi"}])], out)
    text = out.read_text(encoding="utf-8")
    assert "Grüße" in text and "你好" in text and "\\u" not in text


def test_write_jsonl_gz_output_is_gzip(tmp_path):
    out = tmp_path / "pairs.jsonl.gz"
    write_jsonl(load_pairs(write_rows(tmp_path / "in.jsonl", [pair_row()])), out)
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        assert json.loads(handle.readline())["chosen"][1]["content"] == "Fine, thanks."


def test_write_jsonl_leaves_nothing_when_the_records_fail_midway(tmp_path):
    source = write_rows(tmp_path / "in.jsonl", [pair_row(), {"chosen": "oops"}])
    out = tmp_path / "sub" / "out.jsonl"
    with pytest.raises(InputError, match="in.jsonl:2: rejected: missing field"):
        write_jsonl(read_records(source, "trl"), out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_fixture_sharegpt_list_converts_to_canonical_conversations(tmp_path):
    conversations = load_conversations(FIXTURES / "sharegpt.json")
    write_jsonl(conversations, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["sg-1", "7"]
    assert rows[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rows[0]["meta"] == {"model": "gpt-3.5"}


def test_write_jsonl_to_an_unwritable_path_is_a_config_error(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="cannot write .*taken: Is a directory"):
        write_jsonl(load_pairs(write_rows(tmp_path / "in.jsonl", [pair_row()])), tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "taken"]
