"""Property: whatever bytes or JSON rows a file holds, reading it raises nothing but InputError."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.errors import InputError
from chat.formats import FORMATS, read_records

#: Every key some reader looks at, so random rows reach deep into the readers.
KEYS = sorted({
    "chosen", "rejected", "prompt", "id", "meta", "source", "conversation_input", "reject", "answer", "llm_name",
    "category_path", "pair_uid", "language", "instruction", "input", "output", "output_1", "output_2", "generator_1",
    "generator_2", "preference", "annotator", "dataset", "conversations", "messages", "from", "value", "role",
    "content", "question_id", "turns", "choices", "model_id", "answer_id", "history", "user", "bot", "task",
    "instances", "question", "context", "title", "sentences", "supporting_facts", "sent_id", "text", "_id",
    "aggregated_docs", "intra_doc_qas", "multihop_qas", "selected_qa_ids", "clustered_mqa_info", "indoc", "crossdoc",
    "indoc_ids", "crossdoc_ids", "rationale", "name", "type", "system_prompt", "prompt_template", "output_format",
    "category", "reference", "token_count",
})
WORDS = ["user", "assistant", "system", "human", "gpt", "tool", "pairwise", "single", "", " ", "\n\nHuman: hi",
         "\n\nAssistant: yo", "{question}", "{", "1.5"]

scalars = (st.none() | st.booleans() | st.integers(-3, 25) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(WORDS))
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5), max_leaves=25)
rows = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
format_names = st.sampled_from([None, *FORMATS.names()])

#: One valid row per format, to be mutated.
VALID_ROWS: dict[str, dict[str, Any]] = {
    "trl": {"id": "1", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]},
    "hh-rlhf": {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
    "rmb": {"pair_uid": "1", "conversation_input": [{"role": "user", "content": "q", "language": "English"}],
            "chosen": {"llm_name": "m", "answer": "a"}, "reject": {"llm_name": "n", "answer": "b"}, "category_path": "c"},
    "alpaca-eval": {"instruction": "q", "output_1": "a", "output_2": "b", "generator_1": "m", "generator_2": "n",
                    "annotator": "j", "preference": 1.5},
    "sharegpt": {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    "alpaca": {"instruction": "q", "input": "i", "output": "a"},
    "mt-bench": {"question_id": 1, "category": "c", "turns": ["q1", "q2"]},
    "mt-bench-101": {"task": "CM", "id": 1, "history": [{"user": "q", "bot": "a"}]},
    "self-instruct": {"id": "s", "instruction": "q", "instances": [{"input": "", "output": "a"}]},
    "hotpotqa": {"question": "q", "answer": "a", "supporting_facts": {"title": ["t"], "sent_id": [0]},
                 "context": {"title": ["t"], "sentences": [["s."]]}},
    "documents": {"id": "d", "content": "text"},
    "longmit-qa": {"aggregated_docs": [{"id": "D", "content": "x"}], "intra_doc_qas": [[[{"question": "q", "answer": "a"}]]],
                   "selected_qa_ids": [0], "clustered_mqa_info": [{"indoc_ids": [0], "crossdoc_ids": []}],
                   "multihop_qas": [{"indoc": [{"question": "q", "answer": "a"}], "crossdoc": []}]},
    "fastchat-judge-prompts": {"name": "n", "type": "single", "system_prompt": "s", "prompt_template": "{question}"},
}


def read_everything(path: Path, format_name: str | None) -> None:
    """Read in both error modes; only InputError may escape."""
    for on_error in ("fail", "skip"):
        try:
            list(read_records(path, format_name, on_error=on_error, rejects=[]))
        except InputError:
            pass


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".jsonl.gz", ".parquet", ".txt"]),
       format_name=format_names)
def test_random_bytes_raise_only_input_errors(data, suffix, format_name):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"data{suffix}"
        path.write_bytes(data)
        read_everything(path, format_name)


@SETTINGS
@given(content=st.lists(rows | values, min_size=1, max_size=3), as_list=st.booleans(), format_name=format_names)
def test_random_json_rows_raise_only_input_errors(content, as_list, format_name):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("rows.json" if as_list else "rows.jsonl")
        text = json.dumps(content) if as_list else "\n".join(json.dumps(row) for row in content)
        path.write_text(text, encoding="utf-8")
        read_everything(path, format_name)


def mutate(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """Replace, drop or retype one spot somewhere inside `value`."""
    if depth > 5 or not isinstance(value, (dict, list)) or not value or data.draw(st.integers(0, 3)) == 0:
        return data.draw(values)
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = data.draw(st.sampled_from(keys))
    if isinstance(value, dict) and data.draw(st.booleans()):
        del value[key]
    else:
        value[key] = mutate(data, value[key], depth + 1)
    return value


@SETTINGS
@given(data=st.data(), format_name=st.sampled_from(sorted(VALID_ROWS)), forced=st.booleans())
def test_mutated_valid_rows_raise_only_input_errors(data, format_name, forced):
    row = mutate(data, copy.deepcopy(VALID_ROWS[format_name]))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rows.jsonl"
        path.write_text(json.dumps(VALID_ROWS[format_name]) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
        read_everything(path, format_name if forced else None)


def test_every_format_has_a_valid_row_to_mutate():
    assert sorted(VALID_ROWS) == sorted(set(FORMATS.names()) - {"mt-bench-answers"})
    for format_name, row in VALID_ROWS.items():
        assert len(list(FORMATS.get(format_name).records(copy.deepcopy(row)))) >= 1, format_name
