"""SeDi-Instruct and the Self-Instruct baseline with a scripted generator: filters, batches, RM feedback, resume, cost."""

from __future__ import annotations

import json
import random
from itertools import combinations

import pytest
from generate_helpers import write_jsonl

from chat.backends.scripted import ScriptedBackend
from generate.config import SediConfig
from generate.export import export_file
from generate.rouge import rouge_l
from generate.sedi import SediBackends, iteration_log_path, run_sedi
from generate.sedi_steps import instruction_filter_reason, parse_generated_instructions

WORDS = ("river mountain poem budget recipe python essay planet history letter summary story riddle email "
         "garden theorem market song travel chess").split()


def generator(messages, params):
    """Three tasks per call: a fresh one, a near copy of it, and one that copies the first example task."""
    if "Come up with a series" not in messages[-1]["content"]:
        return f"Response to: {messages[-1]['content']}"
    rng = random.Random(params["seed"])
    topic = " ".join(rng.sample(WORDS, 4))
    prompt = messages[-1]["content"]
    first_example = prompt.split("Task 1: ")[1].split("\n")[0]
    n = prompt.count("\nTask ")                      # the example tasks and the open "Task k+1:"
    return f"Write about {topic} today.\nTask {n + 1}: Write about {topic} today please.\nTask {n + 2}: {first_example}"


def seeds(path, n=8):
    return write_jsonl(path, [{"id": f"seed{i}", "instruction": f"Seed task {i}: explain {WORDS[i]} to a child.",
                               "input": "", "output": f"An explanation of {WORDS[i]}."} for i in range(n)])


class SeedRM:
    """Low reward for pairs whose instruction mentions 'river', high otherwise."""

    def score(self, conversations):
        return [-2.0 if "river" in c.messages[0].content else 2.0 for c in conversations]

    def score_turns(self, conversation):
        return self.score([conversation])


def run(tmp_path, mode, rm=None, **values):
    backend = ScriptedBackend(generator)
    config = SediConfig(**{"mode": mode, "backends": {"default": {"kind": "scripted"}}, "iterations": 2,
                           "requests_per_iteration": 4, "instructions_per_call": 3, "seed_examples": 3,
                           "machine_examples": 1, **values})
    result = run_sedi(seeds(tmp_path / "seeds.jsonl"), tmp_path / "out.jsonl", config,
                      backends=SediBackends(backend, backend), rm=rm, progress=False, handle_sigint=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return result, backend, rows


def test_self_instruct_rejects_rouge_l_at_or_above_0_7_against_the_pool_and_answers_the_rest(tmp_path):
    result, backend, rows = run(tmp_path, "self-instruct")
    assert result.counters["generated"] == 2 * 4 * 3
    assert result.counters["dropped_rouge_pool"] >= 2 * 4 * 2       # every near copy and every copied example
    assert len(rows) == result.kept
    assert all(row["meta"]["nearest"]["rouge_l"] < 0.7 for row in rows)
    assert backend.calls == 2 * 4 + result.kept == result.counters["llm_calls"]
    instructions = [row["meta"]["instruction"] for row in rows]
    assert all(rouge_l(a, b) < 0.7 for a, b in combinations(instructions, 2))
    assert rows[0]["messages"][1]["content"] == f"Response to: {instructions[0]}"
    assert {"seed_ids", "iteration", "rm_score", "batch"} <= set(rows[0]["meta"])
    assert result.per_kept()["llm_calls"] == pytest.approx(backend.calls / result.kept)


def test_prompts_show_sampled_seed_tasks_and_stop_after_the_asked_number(tmp_path):
    _, backend, rows = run(tmp_path, "self-instruct", iterations=1)
    request = backend.requests[0]
    prompt = request.messages[-1]["content"]
    assert prompt.startswith("Come up with a series of new, diverse tasks.")
    assert prompt.count("Seed task") == 3 and prompt.endswith("Task 4:")
    assert request.params["stop"] == ["Task 7:"]
    assert all(len(row["meta"]["seed_ids"]) == 3 for row in rows)


def test_sedi_batches_hold_mutually_dissimilar_instructions(tmp_path):
    result, _, rows = run(tmp_path, "sedi", iterations=3, batch_size=3, batch_threshold=0.3, open_batches=2)
    batches = {}
    for row in rows:
        batches.setdefault(row["meta"]["batch"], []).append(row["meta"]["instruction"])
    assert all(len(members) <= 3 for members in batches.values())
    for members in batches.values():
        assert all(rouge_l(a, b) < 0.3 for a, b in combinations(members, 2))
    assert result.counters["dropped_batch_similarity"] > 0


def test_sedi_feedback_retires_seeds_with_low_scoring_offspring_and_promotes_high_scorers(tmp_path):
    result, _, rows = run(tmp_path, "sedi", rm=SeedRM(), iterations=3, min_offspring=1, retire_threshold=0.0,
                          promote_threshold=1.0, rm_keep_threshold=0.0)
    logs = [json.loads(line) for line in iteration_log_path(tmp_path / "out.jsonl").read_text().splitlines()]
    retired = [seed for log in logs for seed in log["retired"]]
    promoted = [seed for log in logs for seed in log["promoted"]]
    assert result.counters["dropped_rm_filter"] > 0 and retired and promoted
    assert all(row["meta"]["rm_score"] == 2.0 for row in rows)
    assert set(promoted) <= {row["id"] for row in rows}


def test_resume_runs_only_unfinished_iterations_without_duplicates(tmp_path):
    first, _, rows_first = run(tmp_path, "self-instruct", iterations=1)
    second, backend, rows = run(tmp_path, "self-instruct", iterations=2)
    assert second.summary.skipped_existing == 1
    assert backend.calls == 4 + second.kept
    assert len({row["id"] for row in rows}) == len(rows) == len(rows_first) + second.kept
    instructions = [row["meta"]["instruction"] for row in rows]
    assert all(rouge_l(a, b) < 0.7 for a, b in combinations(instructions, 2))


def test_alpaca_export(tmp_path):
    _, _, rows = run(tmp_path, "self-instruct", iterations=1)
    assert export_file(tmp_path / "out.jsonl", tmp_path / "alpaca.jsonl", "alpaca") == len(rows)
    first = json.loads((tmp_path / "alpaca.jsonl").read_text().splitlines()[0])
    assert set(first) == {"id", "instruction", "input", "output"}


def test_parse_and_heuristic_filters():
    assert parse_generated_instructions(" Write a haiku.\nTask 5: Sort numbers.\n\nTask 6:  Fix  code", 2) \
        == ["Write a haiku.", "Sort numbers."]
    assert parse_generated_instructions("Task 4: Repeat label.", 5) == ["Repeat label."]
    assert instruction_filter_reason("Draw a picture of a cat", 3, 150) == "unsuitable"
    assert instruction_filter_reason("Hi", 3, 150) == "too_short"
    assert instruction_filter_reason("- list three fruits", 3, 150) == "bad_start"
    assert instruction_filter_reason("List three fruits please", 3, 150) is None
