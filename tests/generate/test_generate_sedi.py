"""SeDi-Instruct and the Self-Instruct baseline with a scripted generator: filters, batches, feedback, resume, cost."""

from __future__ import annotations

import json
import random
from itertools import combinations

import numpy as np
import pytest
from generate_helpers import write_jsonl

from chat.backends.base import Completion, TokenLogprob
from chat.agents import derive_seed
from chat.backends.scripted import ScriptedBackend
from chat.errors import ConfigError
from generate.agents import ParseError
from generate.export import export_file
from generate.rouge import rouge_l
from generate.registry import GENERATORS, load_generators
from generate.sedi.algorithm import SediBackends, expected_calls
from generate.sedi.config import SediConfig
from generate.sedi.run import iteration_log_path, run_sedi
from generate.sedi.steps import generation_format, instruction_filter_reason, parse_generated_instructions

WORDS = ("river mountain poem budget recipe python essay planet history letter summary story riddle email "
         "garden theorem market song travel chess").split()


def token_logprob(instruction):
    """The scripted responder's logprob of every token of its answer to `instruction`: -3 for 'river', else -0.5."""
    return -3.0 if "river" in instruction else -0.5


def generator(messages, params):
    """Three tasks per call (JSON): a fresh one, a near copy of it, and one that copies the first example task.
    A response echoes the instruction, with per-token logprobs (`token_logprob`) when they are asked for."""
    if not messages[-1]["content"].startswith("Come up with"):
        text = f"Response to: {messages[-1]['content']}"
        logprob = token_logprob(messages[-1]["content"])
        return Completion(text, "stop", {"prompt_tokens": 1, "completion_tokens": 4},
                          logprobs=tuple(TokenLogprob(word, logprob) for word in text.split()[:4]))
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
    assert {"seed_ids", "iteration", "rm_score", "batch_id", "position"} <= set(rows[0]["meta"])
    assert rows[0]["meta"]["batch_id"] is None and "feedback_score" not in rows[0]["meta"]
    assert all(request.params["logprobs"] is None for request in backend.requests)    # no feedback, no calibration
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
    assert rows[0]["meta"]["prompt_version"] == "generate-v3"


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
        batches.setdefault(row["meta"]["batch_id"], []).append(row["meta"]["instruction"])
    assert all(len(members) <= 3 for members in batches.values())
    for members in batches.values():
        assert all(rouge_l(a, b) < 0.3 for a, b in combinations(members, 2))
    assert result.counters["batch_waiting"] > 0


def test_expected_calls_add_one_response_per_seed_for_seed_quantile_thresholds():
    load_generators()
    sedi = SediConfig(iterations=2, requests_per_iteration=4, instructions_per_call=3)
    assert (expected_calls(sedi, 8, 10).calls, expected_calls(sedi, 8, 10).max_calls) == (8 + 8 + 12, 8 + 8 + 24)
    baseline = SediConfig(mode="self-instruct", iterations=2, requests_per_iteration=4, instructions_per_call=3)
    assert (expected_calls(baseline, 8, 10).calls, expected_calls(baseline, 8, 10).max_calls) == (8 + 12, 8 + 24)
    absolute = SediConfig(thresholds="absolute", iterations=2, requests_per_iteration=4, instructions_per_call=3)
    assert expected_calls(absolute, 8, 10).max_calls == 8 + 24
    sampled = SediConfig(iterations=2, requests_per_iteration=4, instructions_per_call=3, calibration_seeds=5)
    assert expected_calls(sampled, 8, 10).max_calls == 5 + 8 + 24          # a sample of 5 of the 8 seeds
    assert expected_calls(sampled, 3, 10).max_calls == 3 + 8 + 24          # fewer seeds than the sample
    assert GENERATORS.get("sedi").expected_calls is expected_calls


def test_calibration_seeds_below_2_is_a_config_error():
    with pytest.raises(ConfigError, match="calibration_seeds: expected at least 2"):
        SediConfig(calibration_seeds=1)


def logs_of(tmp_path):
    return [json.loads(line) for line in iteration_log_path(tmp_path / "out.jsonl").read_text().splitlines()]


def test_absolute_rm_feedback_retires_seeds_with_low_scoring_offspring_and_promotes_high_scorers(tmp_path):
    result, backend, rows = run(tmp_path, "sedi", rm=SeedRM(), iterations=3, min_offspring=1,
                                feedback_signal="rm", thresholds="absolute", retire_threshold=0.0,
                                promote_threshold=1.0, keep_threshold=0.0)
    logs = logs_of(tmp_path)
    retired = [seed for log in logs for seed in log["retired"]]
    promoted = [seed for log in logs for seed in log["promoted"]]
    assert result.counters["dropped_feedback_filter"] > 0 and retired and promoted
    assert all(row["meta"]["rm_score"] == row["meta"]["feedback_score"] == 2.0 for row in rows)
    assert set(promoted) <= {row["id"] for row in rows}
    assert logs[0]["thresholds"] == {"signal": "rm", "source": "absolute", "retire": 0.0, "promote": 1.0, "keep": 0.0,
                                     "seed_scores": 0, "seed_mean": None}
    assert "calibration_seeds_scored" not in result.counters                   # absolute: no seed responses
    assert all(request.params["logprobs"] is None for request in backend.requests)


def test_loss_feedback_thresholds_are_quantiles_of_the_seed_set_losses(tmp_path):
    result, backend, rows = run(tmp_path, "sedi", iterations=2, keep_quantile=0.25)
    calibration = backend.requests[:8]
    assert [r.messages for r in calibration] == [[{"role": "user", "content": f"Seed task {i}: explain {WORDS[i]} to "
                                                                              "a child."}] for i in range(8)]
    assert all(r.params["logprobs"] == 0 for r in backend.requests if not
               r.messages[-1]["content"].startswith("Come up with"))
    seed_losses = [3.0] + [0.5] * 7                      # the responder's mean -logprob; seed0 is about 'river'
    def quantile(q):
        return round(float(np.quantile(seed_losses, q)), 6)

    expected = {"signal": "loss", "source": "seed_quantiles", "retire": quantile(0.25), "promote": quantile(0.9),
                "keep": quantile(0.25), "seed_scores": 8, "seed_mean": float(np.mean(seed_losses))}
    assert expected["promote"] == 1.25
    logs = logs_of(tmp_path)
    assert [log["thresholds"] for log in logs] == [expected, expected] and [log["calibrated"] for log in logs] == [
        True, False]
    assert result.counters["calibration_seeds_scored"] == 8 and backend.calls == result.counters["llm_calls"]
    assert rows and all(row["meta"]["feedback_thresholds"] == expected for row in rows)
    for row in rows:
        loss = -token_logprob(row["meta"]["instruction"])
        assert row["meta"]["response_loss"] == row["meta"]["feedback_score"] == loss
    promoted = {seed for log in logs for seed in log["promoted"]}
    assert promoted == {row["id"] for row in rows if row["meta"]["feedback_score"] >= 1.25}
    report = GENERATORS.get("sedi").report(result, tmp_path / "out.jsonl")
    assert "feedback (loss, quantiles of 8 seed scores (mean 0.8125)): retire < 0.5, promote >= 1.25, keep >= 0.5" \
        in report


def test_calibration_answers_a_seeded_sample_of_calibration_seeds_in_pool_order(tmp_path):
    result, backend, _ = run(tmp_path, "sedi", iterations=1, calibration_seeds=3)
    asked = [r.messages[0]["content"] for r in backend.requests[:3]]
    numbers = [int(text.split()[2].rstrip(":")) for text in asked]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3 and set(numbers) <= set(range(8))
    assert not backend.requests[3].messages[-1]["content"].startswith("Seed task")   # then generation starts
    assert result.counters["calibration_seeds_scored"] == 3
    assert logs_of(tmp_path)[0]["thresholds"]["seed_scores"] == 3
    (tmp_path / "again").mkdir()
    _, backend_again, _ = run(tmp_path / "again", "sedi", iterations=1, calibration_seeds=3)
    assert [r.messages for r in backend_again.requests[:3]] == [r.messages for r in backend.requests[:3]]


def test_loss_feedback_needs_a_responder_that_returns_logprobs(tmp_path):
    def plain(messages, params):
        reply = generator(messages, params)
        return reply.text if isinstance(reply, Completion) else reply

    with pytest.raises(ConfigError, match="none of the 8 seed tasks got a score"):
        run(tmp_path, "sedi", responder=plain)


def test_rm_feedback_thresholds_are_quantiles_of_the_seed_set_rm_scores(tmp_path):
    result, _, rows = run(tmp_path, "sedi", rm=SeedRM(), feedback_signal="rm", iterations=3, min_offspring=1,
                          keep_quantile=0.5)
    thresholds = logs_of(tmp_path)[0]["thresholds"]
    assert (thresholds["retire"], thresholds["promote"], thresholds["keep"]) == (2.0, 2.0, 2.0)   # 7 of 8 seeds score 2
    assert result.counters["dropped_feedback_filter"] > 0 and all(row["meta"]["rm_score"] == 2.0 for row in rows)


#: The tasks of each iteration's one generation request (keyed by the call's derived seed).
BATCH_TASKS = {
    derive_seed(0, "generate/0/0"): ["Explain rivers in simple words.", "Explain mountains in simple words.",
                                     "Plan a budget for a family trip."],
    derive_seed(0, "generate/1/0"): ["Explain planets in simple words.", "Write a riddle about chess pieces.",
                                     "Summarize the history of the printing press."]}


def batch_generator(messages, params):
    if messages[-1]["content"].startswith("Come up with"):
        return json.dumps({"tasks": BATCH_TASKS[params["seed"]]})
    return generator(messages, params)


def run_batches(tmp_path, **values):
    return run(tmp_path, "sedi", responder=batch_generator, requests_per_iteration=1, batch_size=2,
               batch_threshold=0.5, open_batches=1, **values)


def test_an_instruction_that_fits_no_open_batch_waits_and_out_is_written_in_batch_order(tmp_path):
    result, _, rows = run_batches(tmp_path)
    assert [(row["meta"]["instruction"], row["meta"]["batch_id"], row["meta"]["position"],
             row["meta"]["written_iteration"], row["meta"]["waited"]) for row in rows] == [
        ("Explain rivers in simple words.", 0, 0, 0, False),
        ("Plan a budget for a family trip.", 0, 1, 0, False),
        ("Explain mountains in simple words.", 1, 0, 1, True),     # waited: batch 0 held a near neighbour
        ("Write a riddle about chess pieces.", 1, 1, 1, False),
        ("Summarize the history of the printing press.", 2, 0, 1, False),
        ("Explain planets in simple words.", 2, 1, 1, True)]
    assert result.counters["batch_waiting"] == 2 and result.counters["batch_placed_later"] == 2
    assert result.counters["batches_written"] == 3 and "dropped_batch_similarity" not in result.counters
    logs = logs_of(tmp_path)
    assert [list(log["open_batches"]) for log in logs] == [["1"], []] and [log["pending"] for log in logs] == [[], []]
    assert [row["id"] for row in logs[0]["open_batches"]["1"]] == ["sedi-0-0-1"]
    report = GENERATORS.get("sedi").report(result, tmp_path / "out.jsonl")
    assert "batches: 3 written this run, 0 open; instructions waited for a batch: 2, placed later: 2, still " \
           "pending: 0" in report
    assert export_file(tmp_path / "out.jsonl", tmp_path / "alpaca.jsonl", "alpaca") == 6
    exported = [json.loads(line)["instruction"] for line in (tmp_path / "alpaca.jsonl").read_text().splitlines()]
    assert exported == [row["meta"]["instruction"] for row in rows]


def test_batch_overflow_drop_keeps_the_old_rule(tmp_path):
    result, _, rows = run_batches(tmp_path, batch_overflow="drop")
    assert result.counters["dropped_batch_similarity"] == 1 and "batch_waiting" not in result.counters
    assert "Explain mountains in simple words." not in [row["meta"]["instruction"] for row in rows]


def test_resume_restores_open_batches_and_the_pending_pool(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, _, straight = run_batches(tmp_path / "a")
    run_batches(tmp_path / "b")
    out = tmp_path / "b" / "out.jsonl"
    # as if killed during iteration 1: its log line and the records it wrote are lost
    out.write_text("".join(json.dumps(row) + "\n" for row in straight if row["meta"]["written_iteration"] == 0))
    log = iteration_log_path(out)
    log.write_text(log.read_text().splitlines()[0] + "\n")
    second, backend, resumed = run_batches(tmp_path / "b")
    assert second.summary.skipped_existing == 1 and resumed == straight
    assert backend.calls == 1 + 3                  # iteration 1: one generation call, three responses


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
