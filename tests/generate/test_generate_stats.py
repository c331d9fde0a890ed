"""`generate stats`: distinct-n, pairwise ROUGE-L, dispersion, RM scores, plots, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from generate_helpers import write_jsonl

from app.cli import main
from chat.conversation import Conversation
from generate.stats import distinct_n, embedding_dispersion, generation_stats


def conversation(i, *questions, scores=None):
    messages = []
    for q in questions:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]
    return Conversation.from_messages(messages, id=f"c{i}", meta={"rm_turn_scores": scores} if scores else {})


def test_distinct_n_counts_unique_ngrams():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a"], 2) is None


def test_dispersion_is_zero_for_identical_vectors_and_grows_with_spread():
    same = np.tile(np.array([[1.0, 0.0]]), (3, 1))
    assert embedding_dispersion(same) == pytest.approx(0.0)
    spread = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert embedding_dispersion(spread) == pytest.approx(1 - np.sqrt(0.5))


def test_stats_cover_every_user_turn_and_recorded_rm_scores():
    stats = generation_stats([conversation(0, "a b", "c d", scores=[1.0, 3.0]), conversation(1, "a b")])
    assert stats["instructions"] == 3 and stats["user_turns"]["mean"] == pytest.approx(1.5)
    assert stats["mean_pairwise_rouge_l"] == pytest.approx(1 / 3)
    assert stats["rm_score"]["mean"] == pytest.approx(2.0)


def test_cli_prints_json_and_writes_plots(tmp_path, capsys):
    path = write_jsonl(tmp_path / "gen.jsonl", [conversation(i, f"question {i} about x", "more",
                                                             scores=[0.1 * i, 0.2]).to_dict() for i in range(5)])
    code = main(["generate", "stats", str(path), "--no-embeddings", "--json", "--plots", str(tmp_path / "plots")])
    assert code == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["conversations"] == 5 and stats["distinct_1"] is not None
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "gen.instruction_words.png", "gen.rm_score.png", "gen.user_turns.png"]
