"""Multi-turn best-of-N (MUSIC evaluation) with scripted policy, user, judge and stand-in reward models."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from chat.backends import ScriptedBackend
from chat.conversation import Conversation
from chat.errors import BackendError, ConfigError
from judge.bon import BonConfig, simulated_user_turn, win_rate_report
from judge.bon_job import run_bon_job
from judge.config import JudgeConfig


class SeedRM:
    """Stand-in RM: reward = +k (or -k) for a reply ending in "s<k>": A likes late samples, B early ones."""

    def __init__(self, sign: float, name: str):
        self.sign = sign
        self.name = name

    def score(self, conversations):
        return [self.sign * int(re.search(r"s(\d+)$", c.messages[-1].content).group(1)) for c in conversations]


def policy_reply(messages, params):
    return f"reply t{sum(m['role'] == 'user' for m in messages)} s{params['seed']}"


def judge_prefers_late_samples(messages, params):
    text = messages[1]["content"]
    shown_a = text.split("<<< Conversation with assistant B >>>")[0]
    return "[[A]]" if re.search(r"s[13]\b", shown_a) else "[[B]]"


PROMPTS = [Conversation.from_messages([{"role": "user", "content": f"Plan a trip to city {i}"}], id=f"q{i}")
           for i in range(2)]


def run(tmp_path, rm_b, *, judge_responder=judge_prefers_late_samples, turns=2, n_values=(2, 4),
        judge_config=None):
    backends = {"policy": ScriptedBackend(policy_reply), "user_sim": ScriptedBackend(lambda m, p: "Tell me more."),
                "judge": ScriptedBackend(judge_responder)}
    section = {role: {"kind": "scripted", "replies": ["unused"]} for role in backends}
    config = BonConfig(turns=turns, n_values=list(n_values), concurrency=1)

    async def go():
        import judge.bon_job as bon_job

        original = bon_job.build_backends
        bon_job.build_backends = lambda section, ledger, cache_path=None: backends
        try:
            return await run_bon_job(config, judge_config or JudgeConfig(), section, rm_a=SeedRM(1, "rm-late"), rm_b=rm_b,
                                     policy_role="policy", user_role="user_sim", prompts=PROMPTS,
                                     output_dir=tmp_path, progress=False)
        finally:
            bon_job.build_backends = original

    summary, report = asyncio.run(go())
    return summary, report, backends


def test_candidates_are_shared_across_rms_and_n_and_counted(tmp_path):
    summary, report, backends = run(tmp_path, SeedRM(-1, "rm-early"))
    # per prompt: turn 1 needs samples 0..3 of the prompt (4 calls, 8 requests shared); after the RMs
    # diverge, turn 2 needs 4 (A, N=4) + 2 (A, N=2) + 4 (B, both N: same context) = 10 calls, 2 shared
    assert backends["policy"].calls == 2 * 14
    assert summary.extra["policy_calls"] == 28 and summary.extra["policy_calls_saved"] == 2 * 10
    # user turns after turn 1: contexts s3, s1 (A) and s0 (B, both N): 3 calls, 1 shared
    assert backends["user_sim"].calls == 2 * 3 and summary.extra["user_calls_saved"] == 2
    assert backends["judge"].calls == 2 * 2 * 2     # 2 prompts x 2 N x both orders
    assert report["by_n"]["2"]["win_rate"] == 1.0 and report["by_n"]["4"]["wins"] == 2
    seeds = {json.loads(line)["results"]["4"]["conversation_a"][1]["content"] for line in
             (tmp_path / "conversations.jsonl").read_text().splitlines()}
    assert seeds == {"reply t1 s3"}
    assert (tmp_path / "win_rate.png").stat().st_size > 0 and "| 4 | 2 | 2 |" in (tmp_path / "report.md").read_text()


def test_identical_final_conversations_are_ties_without_judge_calls(tmp_path):
    summary, report, backends = run(tmp_path, SeedRM(1, "rm-late-too"))
    assert backends["judge"].calls == 0 and summary.extra["judge_calls_saved"] == 4
    assert report["by_n"]["2"] == {**report["by_n"]["2"], "ties": 2, "identical": 2, "win_rate": 0.5}
    # one trajectory per N: every request of RM B's run is shared with RM A's
    assert summary.extra["policy_calls_saved"] >= summary.extra["policy_calls"]


def test_unparseable_judge_verdicts_are_counted_not_scored(tmp_path):
    _, report, _ = run(tmp_path, SeedRM(-1, "rm-early"), judge_responder=lambda m, p: "no verdict", turns=1,
                       n_values=(2,), judge_config=JudgeConfig(max_reasks=0))  # a re-ask would demand JSON
    assert report["by_n"]["2"]["unparseable"] == 2 and report["by_n"]["2"]["n_prompts"] == 2


def test_win_rate_report_counts_ties_as_half_with_a_ci():
    records = [{"results": {"2": {"winner": w}}} for w in ["A", "A", "tie", "B"]]
    row = win_rate_report(records)["by_n"]["2"]
    assert row["win_rate"] == pytest.approx(2.5 / 4) and row["ci"][0] <= 0.625 <= row["ci"][1]


def test_simulated_user_sees_the_conversation_with_roles_flipped_and_its_label_stripped():
    conversation = Conversation.from_messages([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    backend = ScriptedBackend(["User: and then?"])
    config = BonConfig(user_temperature=0.2, user_max_tokens=40, seed=7)
    assert asyncio.run(simulated_user_turn(backend, conversation, config)) == "and then?"
    (request,) = backend.requests
    assert [m["role"] for m in request.messages] == ["system", "assistant", "user", "system"]
    assert [m["content"] for m in request.messages[1:3]] == ["Hi", "Yo"]
    assert "You are the user" in request.messages[0]["content"]
    assert (request.params["temperature"], request.params["max_tokens"], request.params["seed"]) == (0.2, 40, 7)


def test_a_rejected_user_turn_is_asked_again_with_the_next_seed_then_fails():
    conversation = Conversation.from_messages([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    backend = ScriptedBackend(["Conversation so far: hi", "Great! Here's the next message: ok", "Thanks, and then?"])
    assert asyncio.run(simulated_user_turn(backend, conversation, BonConfig(seed=3))) == "Thanks, and then?"
    assert [r.params["seed"] for r in backend.requests] == [3, 4, 5]
    failing = ScriptedBackend(["1 1 1 1 1 1 1 1 1 1"] * 2)
    with pytest.raises(BackendError, match="rejected 2 time.*degenerate_text"):
        asyncio.run(simulated_user_turn(failing, conversation, BonConfig(user_attempts=2)))


def test_bad_bon_config_is_rejected():
    with pytest.raises(ConfigError, match="n_values"):
        BonConfig(n_values=[0]).validate()


def test_bon_cli_with_stand_in_rms(run_cli, tmp_path, monkeypatch):
    import judge.bon_job

    monkeypatch.setattr(judge.bon_job, "load_reward_model",
                        lambda path, device=None: SeedRM(1 if path == "late" else -1, path))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q", "messages": [{"role": "user", "content": "hello"}]}) + "\n")
    config = tmp_path / "bon.yaml"
    config.write_text("backends:\n"
                      "  policy: {kind: scripted, replies: ['x s0', 'y s1']}\n"
                      "  user_sim: {kind: scripted, replies: ['more?']}\n"
                      "  judge: {kind: scripted, replies: ['[[B]]', '[[A]]']}\n"
                      "turns: 1\nn_values: [2]\n")
    code, out, err = run_cli("judge", "bon", "--config", config, "--rm-a", "late", "--rm-b", "early", "--prompts",
                             prompts, "-o", tmp_path / "bon", "--no-progress")
    assert code == 0, err
    assert "N=2: win rate of A 0.000" in out        # the judge consistently preferred RM B's conversation
    report = json.loads((tmp_path / "bon" / "report.json").read_text())
    assert report["calls"] == {"policy_calls": 2, "policy_calls_saved": 2}
