"""Verdict records and importers: turnwise JSONL, FastChat MT-Bench judgments, AlpacaEval annotations, pair datasets."""

from __future__ import annotations

import gzip
import json

import pytest

from chat.errors import InputError
from judge.verdicts import VerdictRecord, alpaca_eval_winner, read_judgments


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_generic_verdicts_are_read_with_defaults(tmp_path):
    path = write_jsonl(tmp_path / "v.jsonl", [{"id": "q1", "a": "m1", "b": "m2", "winner": "A", "turn": 2},
                                              {"id": "q2", "winner": "tie", "category": "math"},
                                              {"id": "q3", "winner": None}])
    judged = read_judgments(path)
    assert judged.layout == "verdicts" and judged.kind == "pairwise"
    assert judged.records[0] == VerdictRecord("q1", "m1", "m2", "A", turn=2)
    assert judged.records[1].a == "A" and judged.records[1].category == "math"
    assert judged.records[2].winner is None


def test_bad_winner_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "v.jsonl", [{"id": "q1", "winner": "A"}, {"id": "q2", "winner": "left"}])
    with pytest.raises(InputError) as error:
        read_judgments(path)
    assert str(error.value).startswith(f"{path}:2: winner: expected")


def test_missing_id_and_bad_turn_are_reported(tmp_path):
    path = write_jsonl(tmp_path / "v.jsonl", [{"id": "q1", "winner": "A"}, {"winner": "B"}])
    with pytest.raises(InputError, match=r":2: id: missing field"):
        read_judgments(path)
    path = write_jsonl(tmp_path / "w.jsonl", [{"id": "q1", "winner": "A", "turn": 0}])
    with pytest.raises(InputError, match=r":1: turn: expected a turn number"):
        read_judgments(path)


def test_unrecognised_layout_is_an_input_error(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(InputError, match=r":1: row: not a verdicts file"):
        read_judgments(path)


FASTCHAT_PAIRWISE = [
    {"question_id": 81, "model_1": "gpt-4", "model_2": "vicuna", "g1_winner": "model_1", "g2_winner": "model_1",
     "judge": ["gpt-4", "pair-v2"], "turn": 1},
    {"question_id": 81, "model_1": "gpt-4", "model_2": "vicuna", "g1_winner": "model_2", "g2_winner": "model_1",
     "judge": ["gpt-4", "pair-v2-multi-turn"], "turn": 2},
    {"question_id": 82, "model_1": "gpt-4", "model_2": "vicuna", "g1_winner": "error", "g2_winner": "tie",
     "judge": ["gpt-4", "pair-v2"], "turn": 1},
]


def test_fastchat_pairwise_orders_combine_and_disagreement_is_a_tie(tmp_path):
    judged = read_judgments(write_jsonl(tmp_path / "gpt-4_pair.jsonl", FASTCHAT_PAIRWISE))
    assert judged.layout == "fastchat-pairwise"
    first, second, third = judged.records
    assert (first.id, first.a, first.b, first.winner, first.turn) == ("81", "gpt-4", "vicuna", "A", 1)
    assert first.judge == "gpt-4/pair-v2"
    assert second.winner == "tie" and second.detail["orders"] == {"AB": "B", "BA": "A"}
    assert third.winner is None


def test_fastchat_human_judgments_layout(tmp_path):
    rows = [{"question_id": 81, "model_a": "alpaca-13b", "model_b": "gpt-3.5-turbo", "winner": "model_b",
             "judge": "expert_0", "turn": 1}]
    record = read_judgments(write_jsonl(tmp_path / "human.jsonl", rows)).records[0]
    assert (record.a, record.b, record.winner) == ("alpaca-13b", "gpt-3.5-turbo", "B")


def test_fastchat_single_grades_and_error_scores(tmp_path):
    rows = [{"question_id": 81, "model": "vicuna", "judge": ["gpt-4", "single-v1"], "score": 8, "turn": 1},
            {"question_id": 81, "model": "vicuna", "judge": ["gpt-4", "single-v1-multi-turn"], "score": -1, "turn": 2}]
    judged = read_judgments(write_jsonl(tmp_path / "gpt-4_single.jsonl", rows))
    assert judged.kind == "grade" and judged.layout == "fastchat-single"
    assert [(r.id, r.score, r.turn) for r in judged.records] == [("81/vicuna", 8.0, 1), ("81/vicuna", None, 2)]


@pytest.mark.parametrize("preference, winner", [(1, "A"), (2, "B"), (1.5, "tie"), (1.2, "A"), (1.7328, "B")])
def test_alpaca_eval_preference_mapping(preference, winner):
    assert alpaca_eval_winner(preference) == winner


def test_alpaca_eval_annotations_file(tmp_path):
    rows = [{"instruction": "Say hi", "output_1": "Hi!", "generator_1": "gpt4", "output_2": "Hello there, friend",
             "generator_2": "mistral", "annotator": "gpt4_turbo", "preference": 2.0, "dataset": "vicuna"},
            {"instruction": "Count", "output_1": "1 2 3", "generator_1": "gpt4", "output_2": "one",
             "generator_2": "mistral", "annotator": "gpt4_turbo", "preference": 1.5, "dataset": "oasst"}]
    path = tmp_path / "x.annotations.json.gz"
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    judged = read_judgments(path)
    assert judged.layout == "alpaca-eval"
    first, second = judged.records
    assert (first.a, first.b, first.winner, first.category) == ("gpt4", "mistral", "B", "vicuna")
    assert first.detail["len_a"] == 3 and first.detail["len_b"] == len("Hello there, friend")
    assert second.winner == "tie"


def test_alpaca_eval_bad_preference_names_the_element(tmp_path):
    rows = [{"instruction": "Say hi", "output_1": "Hi!", "output_2": "Hello", "preference": 3}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(InputError, match=r"\[0\]\.preference: expected a number in \[1, 2\]"):
        read_judgments(path)


def test_preference_pairs_are_read_as_labels_where_chosen_wins(tmp_path):
    rows = [{"id": "p1", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
             "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad!"}]}]
    record = read_judgments(write_jsonl(tmp_path / "pairs.jsonl", rows)).records[0]
    assert (record.id, record.a, record.b, record.winner) == ("p1", "chosen", "rejected", "A")


def test_real_alpaca_eval_annotations_import(shared_data):
    path = shared_data / "judgments/alpaca_eval/Mistral-7B-Instruct-v0.2.alpaca_eval_gpt4_turbo_fn.annotations.json.gz"
    judged = read_judgments(path)
    winners = [r.winner for r in judged.records]
    assert len(winners) == 805 and winners.count("A") == 680 and winners.count("B") == 125
    weighted = read_judgments(shared_data / "judgments/alpaca_eval/"
                              "FuseChat-Gemma-2-9B-Instruct.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz")
    assert [r.winner for r in weighted.records].count("tie") == 5


def test_flipping_a_record_keeps_which_side_was_shown_first():
    # a judge that always picks the answer shown first: m2 first -> "A" (m2), m1 first -> "B" (m1)
    record = VerdictRecord("q", "m2", "m1", "tie", detail={"orders": {"AB": "A", "BA": "B"}, "len_a": 5, "len_b": 9})
    flipped = record.flipped()
    assert (flipped.a, flipped.b, flipped.winner) == ("m1", "m2", "tie")
    # now m1 is "A": shown first in the AB order, where the judge picked it again
    assert flipped.detail["orders"] == {"AB": "A", "BA": "B"}
    assert (flipped.detail["len_a"], flipped.detail["len_b"]) == (9, 5)
