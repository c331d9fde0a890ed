"""Multi-turn best-of-N evaluation of two reward models (docs/methods.md, Multi-turn best-of-N).

For each first prompt and each N: a policy samples N candidate replies, reward model A picks one,
a simulated user writes the next user turn from that conversation; T turns in all. The same from the
same prompt with reward model B. A judge then compares the two final conversations pairwise in both
orders; win rate of A = (wins + 0.5 ties) / total, per N, with a bootstrap CI.

Sharing: candidate i for a given conversation is always sampled with seed `seed + i`, so it is the
same request wherever it is needed. While the two trajectories coincide (before the RMs first pick
differently), and across N (the N=2 candidates are the first two of the N=8 ones), each request is
made once per prompt; `policy_calls_saved` / `user_calls_saved` count the requests that were shared.
Two identical final conversations are a tie without asking the judge (`judge_calls_saved`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from chat.backends.base import ChatBackend
from chat.conversation import Conversation, content_id
from chat.errors import BackendError, ConfigError
from chat.gather import gather_or_cancel
from chat.stats import CI_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_mean_ci
from chat.user_simulator import UserTurnRejected, ask_user_turn, format_user_simulator_input, parse_user_turn
from judge import agreement as stats
from judge.base import Judge
from rm.scorer import LockedScorer


@dataclass
class BonConfig:
    """Options of `turnwise judge bon`.

    turns: user turns per conversation (paper: 3). n_values: candidates per turn to compare (paper: 2, 4, 8).
    temperature / max_tokens: policy sampling; candidate i uses seed `seed + i`.
    user_temperature / user_max_tokens / user_attempts: the simulated user's replies (chat.user_simulator).
    concurrency: prompts processed at once.
    """

    turns: int = field(default=3, metadata={"help": "user turns per conversation (paper: 3)"})
    n_values: list[int] = field(default_factory=lambda: [2, 4, 8], metadata={"help": "values of N (paper: 2 4 8)"})
    temperature: float = field(default=0.8, metadata={"help": "policy sampling temperature"})
    max_tokens: int = field(default=512, metadata={"help": "max tokens of a policy reply"})
    user_temperature: float = field(default=0.7, metadata={"help": "simulated user temperature"})
    user_max_tokens: int = field(default=192, metadata={"help": "max tokens of a simulated user turn"})
    seed: int = field(default=0, metadata={"help": "candidate i is sampled with seed + i"})
    user_attempts: int = field(default=3, metadata={"help": "tries per simulated user turn while the filters "
                                                            "reject it (attempt k uses seed + k)"})
    concurrency: int = field(default=4, metadata={"help": "prompts processed at once"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N prompts"})

    def validate(self) -> None:
        if self.turns < 1:
            raise ConfigError(f"turns: expected >= 1, got {self.turns}")
        if self.user_attempts < 1:
            raise ConfigError(f"user_attempts: expected >= 1, got {self.user_attempts}")
        if not self.n_values or any(n < 1 for n in self.n_values):
            raise ConfigError(f"n_values: expected positive integers, got {self.n_values}")


class SharedRequests:
    """Per-prompt memo of policy candidates and simulated user turns: each distinct request runs once."""

    def __init__(self, counters: Counter):
        self.counters = counters
        self._tasks: dict[tuple, asyncio.Task] = {}

    async def get(self, kind: str, key: tuple, make: Callable[[], Awaitable[str]]) -> str:
        full_key = (kind, *key)
        task = self._tasks.get(full_key)
        if task is None:
            self.counters[f"{kind}_calls"] += 1
            task = asyncio.ensure_future(make())
            self._tasks[full_key] = task
        else:
            self.counters[f"{kind}_calls_saved"] += 1
        return await asyncio.shield(task) if not task.done() else task.result()


async def simulated_user_turn(user_simulator: ChatBackend, conversation: Conversation, config: BonConfig) -> str:
    """The simulated user's next turn (`chat.user_simulator`: the conversation shown with roles flipped).
    A reply rejected by the shared filters (scaffolding, degenerate, a copy of the turn before) is asked
    again with the next seed, `user_attempts` times in all; then BackendError names the last reason."""
    history = list(conversation.messages)

    async def write(attempt: int) -> str:
        completion = await user_simulator.chat(format_user_simulator_input(history),
                                               temperature=config.user_temperature,
                                               max_tokens=config.user_max_tokens, seed=config.seed + attempt)
        return parse_user_turn(completion.text)

    try:
        return await ask_user_turn(write, history, config.user_attempts)
    except UserTurnRejected as rejected:
        raise BackendError(f"the simulated user's turn was rejected {rejected.attempts} time(s): "
                           f"{rejected.problem.reason}: {rejected.problem.detail}") from None


def _key(conversation: Conversation) -> str:
    return content_id(conversation.to_messages())


async def best_of_n_conversation(prompt: Conversation, scorer: LockedScorer, n: int, *, policy: ChatBackend,
                                 user_simulator: ChatBackend, config: BonConfig, shared: SharedRequests
                                 ) -> tuple[Conversation, list[dict[str, Any]]]:
    """One trajectory (docs/methods.md, BoN steps 2-4): T turns, each the RM's pick of N policy samples, the
    simulated user continuing from the picked reply. Returns the conversation and each turn's scores."""
    conversation = prompt
    picks = []
    for turn in range(1, config.turns + 1):
        context = conversation

        async def sample(i: int, context: Conversation = context) -> str:
            async def make() -> str:
                completion = await policy.chat(context.messages, temperature=config.temperature,
                                               max_tokens=config.max_tokens, seed=config.seed + i)
                if not completion.text.strip():
                    raise BackendError(f"the policy returned an empty reply (candidate {i}, turn {turn})")
                return completion.text.strip()
            return await shared.get("policy", (_key(context), i), make)

        candidates = await gather_or_cancel(*(sample(i) for i in range(n)))
        scores = await scorer.score([context.appended("assistant", c) for c in candidates])
        best = max(range(n), key=lambda i: (scores[i], -i))  # highest score; the earliest sample on ties
        picks.append({"turn": turn, "picked": best, "scores": scores})
        conversation = context.appended("assistant", candidates[best])
        if turn < config.turns:
            answered = conversation

            async def make_user() -> str:
                return await simulated_user_turn(user_simulator, answered, config)

            conversation = conversation.appended("user", await shared.get("user", (_key(answered),), make_user))
    return conversation, picks


def first_prompt(conversation: Conversation) -> Conversation:
    """The conversation up to its first user turn (a leading system message kept)."""
    for index, message in enumerate(conversation.messages):
        if message.role == "user":
            return Conversation(conversation.messages[: index + 1], id=conversation.id, meta=dict(conversation.meta))
    raise ValueError(f"conversation {conversation.id!r} has no user turn")


async def compare_rms_on_prompt(prompt: Conversation, scorer_a: LockedScorer, scorer_b: LockedScorer, *,
                                policy: ChatBackend, user_simulator: ChatBackend, judge: Judge, config: BonConfig,
                                counters: Counter) -> dict[str, Any]:
    """For every N: RM A's and RM B's best-of-N conversations from `prompt`, and the judge's verdict (A = RM A)."""
    shared = SharedRequests(counters)
    prompt = first_prompt(prompt)
    results = {}

    async def for_n(n: int) -> tuple[int, dict[str, Any]]:
        (conv_a, picks_a), (conv_b, picks_b) = await gather_or_cancel(
            best_of_n_conversation(prompt, scorer_a, n, policy=policy, user_simulator=user_simulator, config=config,
                                   shared=shared),
            best_of_n_conversation(prompt, scorer_b, n, policy=policy, user_simulator=user_simulator, config=config,
                                   shared=shared))
        identical = conv_a.to_messages() == conv_b.to_messages()
        if identical:
            counters["judge_calls_saved"] += 1
            winner, detail = "tie", {"identical": True}
        else:
            verdict = await judge.judge_pair(conv_a, conv_b)
            winner, detail = verdict.winner, verdict.detail
        counters[f"n{n}_{winner if winner is not None else 'unparseable'}"] += 1
        return n, {"winner": winner, "identical": identical, "conversation_a": conv_a.to_messages(),
                   "conversation_b": conv_b.to_messages(), "picks_a": picks_a, "picks_b": picks_b, "verdict": detail}

    # Largest N first, so that smaller N find its candidates already requested.
    for n, result in await gather_or_cancel(*(for_n(n) for n in sorted(config.n_values, reverse=True))):
        results[str(n)] = result
    return {"id": prompt.id, "prompt": prompt.to_messages(), "rm_a": scorer_a.name, "rm_b": scorer_b.name,
            "judge": judge.name, "turns": config.turns, "results": results}


# ----------------------------------------------------------------------------- report

def win_rate_report(records: Sequence[dict[str, Any]], *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Per N: wins / ties / losses of RM A over RM B, win rate with ties = 0.5 and its bootstrap CI.
    Unparseable verdicts are counted and left out."""
    by_n: dict[str, Any] = {}
    n_values = sorted({int(n) for record in records for n in record["results"]})
    for n in n_values:
        winners = [r["results"][str(n)]["winner"] for r in records if str(n) in r["results"]]
        decided = [w for w in winners if w is not None]
        points = stats.win_points(decided)
        by_n[str(n)] = {
            "n_prompts": len(winners), "unparseable": len(winners) - len(decided),
            "wins": decided.count("A"), "ties": decided.count("tie"), "losses": decided.count("B"),
            "identical": sum(1 for r in records if r["results"].get(str(n), {}).get("identical")),
            "win_rate": float(points.mean()) if len(points) else math.nan,
            "ci": list(bootstrap_mean_ci(points, resamples=resamples, seed=seed)),
        }
    return {"by_n": by_n, "bootstrap": {"resamples": resamples, "seed": seed, "level": CI_LEVEL}}


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _plot_name(rm: Any, default: str) -> str:
    """An RM's name short enough for an axis label: the last part of its path."""
    return Path(str(rm)).name if rm else default


def write_bon_report(records: Sequence[dict[str, Any]], output_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """report.json, report.md and win_rate.png (win rate of A vs N with 95% CI) in `output_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = win_rate_report(records)
    report.update(extra)
    output_dir.mkdir(parents=True, exist_ok=True)
    ns = [int(n) for n in report["by_n"]]
    rows = [report["by_n"][str(n)] for n in ns]
    name_a, name_b = (_plot_name(extra.get(key), default) for key, default in (("rm_a", "RM A"), ("rm_b", "RM B")))
    if ns:
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        shown = [(i, r) for i, r in enumerate(rows) if not math.isnan(r["win_rate"])]  # all-unparseable N: no point
        rates = [r["win_rate"] for _, r in shown]
        errors = [[max(r["win_rate"] - r["ci"][0], 0) for _, r in shown], [max(r["ci"][1] - r["win_rate"], 0) for _, r in shown]]
        ax.errorbar([i for i, _ in shown], rates, yerr=errors, marker="o", capsize=4)
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_xlim(-0.5, len(ns) - 0.5)
        ax.set_ylim(0, 1)
        ax.set_xlabel("N (candidates per turn)")
        ax.set_ylabel(f"win rate of {name_a} over {name_b}\n(ties = 0.5)")
        ax.set_title("Multi-turn best-of-N, 95% bootstrap CI")
        fig.tight_layout()
        fig.savefig(output_dir / "win_rate.png", dpi=100)
        plt.close(fig)
    safe = json.loads(json.dumps(report, default=str).replace("NaN", "null"))
    (output_dir / "report.json").write_text(json.dumps(safe, indent=2) + "\n", encoding="utf-8")
    lines = ["# Multi-turn best-of-N: RM A vs RM B", "",
             f"RM A: `{extra.get('rm_a', '')}`, RM B: `{extra.get('rm_b', '')}`, judge: `{extra.get('judge', '')}`, "
             f"{extra.get('turns', '')} turns, {len(records)} prompts.", "",
             "| N | prompts | A wins | ties | B wins | unparseable | identical | win rate of A | 95% CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, r in zip(ns, rows):
        lines.append(f"| {n} | {r['n_prompts']} | {r['wins']} | {r['ties']} | {r['losses']} | {r['unparseable']} | "
                     f"{r['identical']} | {_fmt(r['win_rate'])} | [{_fmt(r['ci'][0])}, {_fmt(r['ci'][1])}] |")
    calls = extra.get("calls", {})
    if calls:
        lines += ["", "Requests: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) + "."]
    lines += ["", "![win rate vs N](win_rate.png)"]
    (output_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
