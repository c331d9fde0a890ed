"""`generate review-instruct` as a resumable job: output files, resume, seed formats, ShareGPT export, the CLI."""

from __future__ import annotations

import json

from generate_helpers import FakeAgents, FakeRM, agents_backend, alpaca_seeds, write_jsonl

from chat.backends.base import Completion
from app.cli import main
from chat.conversation import Conversation
from chat.formats import read_records
from chat.runner import seed_log_path
from generate.review_instruct.algorithm import ReviewInstructBackends
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.run import run_review_instruct


def chairman_reply(messages):
    """The chairman's JSON object: its decision (breadth) and a question numbered after the questions so far."""
    asked = messages[-1]["content"].split("Latest answer:")[0].count("\n") - 1
    return json.dumps({"decision": "breadth", "question": f"Question {asked + 1}?"})


def review_agents(**overrides):
    return FakeAgents(**{"chairman": chairman_reply, **overrides})


def run(tmp_path, source, agents=None, rm=None, **values):
    backend, agents = agents_backend(agents or review_agents())
    config = ReviewInstructConfig(**{"backends": {"default": {"kind": "scripted"}}, "reviewers": 2, **values})
    result = run_review_instruct(source, tmp_path / "out.jsonl", config,
                                 backends=ReviewInstructBackends(backend, [backend] * config.reviewers, backend),
                                 rm=rm, progress=False, handle_sigint=False)
    return result, backend


def test_kept_conversations_are_canonical_with_meta_and_counters(tmp_path):
    result, backend = run(tmp_path, alpaca_seeds(tmp_path / "seeds.jsonl", 4), rm=FakeRM())
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 4 == result.kept == result.kept_total
    assert set(rows[0]) == {"id", "messages", "meta"}
    meta = rows[0]["meta"]
    assert {"rounds", "rm_turn_scores", "usage", "prompt_version", "next_question", "agents", "direction",
            "reviewer_panel"} <= set(meta)
    assert [seat["persona"] for seat in meta["reviewer_panel"]] == ["accuracy", "depth"]
    assert [(r["decision"], r["decided_by"]) for r in meta["rounds"]] == [("breadth", "chairman")] * 2
    assert meta["usage"]["calls"] == 2 * (1 + 2 + 1)
    assert result.counters["llm_calls"] == backend.calls == 4 * 8
    assert result.counters["decision_breadth"] == 8
    assert all(isinstance(r, Conversation) for r in read_records(tmp_path / "out.jsonl"))


def test_resume_grows_only_unfinished_seeds_and_remembers_dropped_ones(tmp_path):
    source = alpaca_seeds(tmp_path / "seeds.jsonl", 5)
    drop_two = review_agents(candidate=lambda m: "long " * 301 if "number 2." in m[1]["content"] else "ANSWER: ok")
    first, _ = run(tmp_path, source, drop_two, limit=3)
    assert first.kept == 2 and first.dropped == {"parse_failure": 1}
    second, backend = run(tmp_path, source, drop_two)
    assert second.summary.skipped_existing == 3 and second.kept == 2
    assert backend.calls == 2 * 2 * 4
    log = {row["id"]: row for row in read_records_raw(seed_log_path(tmp_path / "out.jsonl"))}
    assert log["s2"]["kept"] is False and log["s2"]["dropped"] == "parse_failure"
    assert len(list(read_records(tmp_path / "out.jsonl"))) == 4


def test_degenerate_seeds_are_counted_and_logged_with_their_reason(tmp_path):
    source = alpaca_seeds(tmp_path / "seeds.jsonl", 3)
    loop = review_agents(candidate=lambda m: "ANSWER: " + "In the " * 12 if "number 1." in m[1]["content"] else "ANSWER: ok")
    result, _ = run(tmp_path, source, loop, rounds=1)
    assert result.kept == 2 and result.dropped == {"degenerate_text": 1}
    assert result.counters["dropped_degenerate_text"] == 1
    log = {row["id"]: row for row in read_records_raw(seed_log_path(tmp_path / "out.jsonl"))}
    assert log["s1"]["dropped"] == "degenerate_text" and log["s1"]["detail"].startswith("candidate/1: 'In the In the")


def test_truncated_answers_are_counted_and_logged_as_dropped(tmp_path):
    source = alpaca_seeds(tmp_path / "seeds.jsonl", 3)
    cut = review_agents(candidate=lambda m: Completion("ANSWER: it is cut", "length") if "number 0." in m[1]["content"]
                        else "ANSWER: ok")
    result, _ = run(tmp_path, source, cut, rounds=1)
    assert result.kept == 2 and result.dropped == {"truncated_turn": 1}
    assert result.counters["dropped_truncated_turn"] == 1
    log = {row["id"]: row for row in read_records_raw(seed_log_path(tmp_path / "out.jsonl"))}
    assert log["s0"]["dropped"] == "truncated_turn" and log["s0"]["detail"].startswith("candidate/1: the answer was cut")


def read_records_raw(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_seeds_from_self_instruct_mt_bench_and_plain_text(tmp_path, shared_data):
    for source, expected in [(shared_data / "seeds" / "self_instruct_seed_tasks.jsonl", "seed_task_0"),
                             (shared_data / "mt_bench" / "question.jsonl", None)]:
        result, backend = run(tmp_path / source.stem, source, limit=2, rounds=1, reviewers=1)
        assert result.kept == 2
        first_question = backend.requests[0].messages[-1]["content"]
        rows = list(read_records(tmp_path / source.stem / "out.jsonl"))
        assert rows[0].messages[0].content == first_question
    text = tmp_path / "questions.txt"
    text.write_text("Why is the sky blue?\n\nHow do vaccines work?\n")
    result, backend = run(tmp_path / "txt", text, rounds=1, reviewers=1)
    assert result.kept == 2
    rows = list(read_records(tmp_path / "txt" / "out.jsonl"))
    assert sorted(r.messages[0].content for r in rows) == ["How do vaccines work?", "Why is the sky blue?"]
    assert sorted(r.meta["source_id"][-2:] for r in rows) == ["-1", "-2"]


def test_cli_runs_with_configured_backends_and_exports_sharegpt(tmp_path, monkeypatch):
    import chat.backends.factory as factory
    from chat.backends.scripted import ScriptedBackend

    monkeypatch.setattr(factory, "build_backends", lambda section, ledger: {"default": ScriptedBackend(review_agents())})
    source = alpaca_seeds(tmp_path / "seeds.jsonl", 2)
    code = main(["generate", "review-instruct", "--seeds", str(source), "-o", str(tmp_path / "out.jsonl"),
                 "--rounds", "1", "--reviewers", "1", "--sharegpt", str(tmp_path / "share.jsonl")])
    assert code == 0
    rows = read_records_raw(tmp_path / "share.jsonl")
    assert len(rows) == 2 and rows[0]["conversations"][0]["from"] == "human"
    assert rows[0]["conversations"][1]["from"] == "gpt"


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"instruction": ""}])
    code = main(["generate", "review-instruct", "--seeds", str(bad), "-o", str(tmp_path / "o.jsonl"),
                 "--input_on_error", "fail", "--config", str(tmp_path / "missing.yaml")])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
