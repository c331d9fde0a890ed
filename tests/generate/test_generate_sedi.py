"""SeDi-Instruct and the Self-Instruct baseline with a scripted generator: filters, batches, RM feedback, resume, cost."""

from __future__ import annotations

import json
import random
from itertools import combinations

import pytest
from generate_helpers import write_jsonl

from chat.backends.base import Completion
from chat.backends.scripted import ScriptedBackend
from generate.agents import ParseError
from generate.export import export_file
from generate.rouge import rouge_l
from generate.sedi.algorithm import SediBackends
from generate.sedi.config import SediConfig
from generate.sedi.run import iteration_log_path, run_sedi
from generate.sedi.steps import generation_format, instruction_filter_reason, parse_generated_instructions

WORDS = ("river mountain poem budget recipe python essay planet history letter summary story riddle email "
         "garden theorem market song travel chess").split()


def generator(messages, params):
    """Three tasks per call (JSON): a fresh one, a near copy of it, and one that copies the first example task."""
    if not messages[-1]["content"].startswith("Come up with"):
        return f"Response to: {messages[-1]['content']}"
    rng = random.Random(params["seed"])
    topic = " ".join(rng.sample(WORDS, 4))
    first_example = messages[-1]["content"].split("Task 1: ")[1].split("\n")[0]
    return json.dumps({"tasks": [f"Write about {topic} today.", f"Write about {topic} today please.", first_example]})


def seeds(path, n=8):
    return write_jsonl(path, [{"id": f"seed{i}", "instruction": f"Seed task {i}: explain {WORDS[i]} to a child.",
                               "input": "", "output": f"An explanation of {WORDS[i]}."} for i in range(n)])


class SeedRM:
    """Low reward for pairs whose instruction mentions 'river', high otherwise."""

    def score(self, conversations):
        return [-2.0 if "river" in c.messages[0].content else 2.0 for c in conversations]

    def score_turns(self, conversation):
        return self.score([conversation])


def run(tmp_path, mode, rm=None, responder=generator, **values):
    backend = ScriptedBackend(responder)
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


def test_prompts_show_sampled_seed_tasks_and_ask_for_a_bounded_json_batch(tmp_path):
    _, backend, rows = run(tmp_path, "self-instruct", iterations=1)
    request = backend.requests[0]
    prompt = request.messages[-1]["content"]
    assert prompt.startswith("Come up with 3 new, diverse tasks.")
    assert prompt.count("Seed task") == 3 and "Task 3: Seed task" in prompt and "Task 4:" not in prompt
    assert prompt.endswith('Reply with only a JSON object with one key, "tasks": a list of 3 new tasks, each one '
                           'instruction as a string.')
    assert request.params["stop"] is None
    assert request.params["response_format"] == generation_format(3) == {
        "type": "json_schema", "json_schema": {"name": "new_tasks", "strict": True, "schema": {
            "type": "object", "properties": {"tasks": {"type": "array", "items": {"type": "string"},
                                                       "minItems": 1, "maxItems": 3}},
            "required": ["tasks"], "additionalProperties": False}}}
    responses = [r for r in backend.requests if not r.messages[-1]["content"].startswith("Come up with")]
    assert responses and all(r.params["response_format"] is None for r in responses)    # responses are free text
    assert all(len(row["meta"]["seed_ids"]) == 3 for row in rows)
    assert rows[0]["meta"]["prompt_version"] == "generate-v2"


DEGENERATE = ["In the In the In the In the In the In the", "1 1 1 1 1 1 1 1", "I\nI\nI\nI\nI\nI\nI\nI\nI"]


def test_degenerate_instructions_and_responses_are_dropped_and_counted(tmp_path):
    def responder(messages, params):
        prompt = messages[-1]["content"]
        if prompt.startswith("Come up with"):
            return json.dumps({"tasks": [*DEGENERATE, f"Write about {WORDS[params['seed'] % 20]} and tea now."]})
        return "In the " * 10 if "tea" in prompt else generator(messages, params)

    result, backend, rows = run(tmp_path, "self-instruct", responder=responder, iterations=1,
                                requests_per_iteration=1, instructions_per_call=4)
    assert result.counters["generated"] == 4 and result.counters["dropped_degenerate_text"] == 3 + 1
    assert rows == [] and result.dropped == {"degenerate_text": 4}
    assert backend.calls == 1 + 1        # only the ordinary instruction was answered


def test_an_unparseable_generator_reply_is_counted_and_yields_nothing(tmp_path):
    def responder(messages, params):
        if messages[-1]["content"].startswith("Come up with"):
            return Completion('{"tasks": ["Write a poem ab', "length")
        return generator(messages, params)

    result, backend, rows = run(tmp_path, "self-instruct", responder=responder, iterations=1)
    assert result.counters["generation_parse_failures"] == 4 and result.counters["generated"] == 0
    assert rows == [] and backend.calls == 4


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


def test_parse_reads_the_json_batch_and_falls_back_to_labelled_or_listed_text():
    assert parse_generated_instructions('{"tasks": ["Write  a haiku.", "Task 5: Sort numbers.", " ", "2. Fix code"]}',
                                        5) == ["Write a haiku.", "Sort numbers.", "Fix code"]
    assert parse_generated_instructions('{"tasks": ["a b c", "d e f", "g h i"]}', 2) == ["a b c", "d e f"]
    assert parse_generated_instructions('{"tasks": ["Convert 2.5 liters."]}', 2) == ["Convert 2.5 liters."]
    with pytest.raises(ParseError, match="not a complete JSON object"):
        parse_generated_instructions('{"tasks": ["Write a poem ab', 3)
    with pytest.raises(ParseError, match='"tasks"'):
        parse_generated_instructions('{"tasks": "Write a haiku."}', 3)
    # free-text fallback: "Task N:" labels (a preamble before the first is dropped), list items, or lines
    assert parse_generated_instructions("Here you go:\nTask 5: Sort numbers.\n\nTask 6:  Fix  code", 5) \
        == ["Sort numbers.", "Fix code"]
    assert parse_generated_instructions("Task 4: Repeat label.", 5) == ["Repeat label."]
    assert parse_generated_instructions("New tasks:\n1. Sort numbers.\n- Fix code", 5) == ["Sort numbers.", "Fix code"]
    assert parse_generated_instructions("Write a haiku.\nSort numbers.", 1) == ["Write a haiku."]


def test_parse_and_heuristic_filters():
    assert instruction_filter_reason("Draw a picture of a cat", 3, 150) == "unsuitable"
    assert instruction_filter_reason("Hi", 3, 150) == "too_short"
    assert instruction_filter_reason("- list three fruits", 3, 150) == "bad_start"
    assert instruction_filter_reason("List three fruits please", 3, 150) is None
