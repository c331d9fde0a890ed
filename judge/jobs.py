"""`judge pairs` and `judge grade` as resumable runner jobs: build the judge from its config, judge every item."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from chat.backends import UsageLedger, aclose_backends, build_backends
from chat.backends.base import ChatBackend
from chat.conversation import Conversation, PreferencePair
from chat.formats import FORMATS, detect_format, load_conversations, load_pairs
from chat.formats.base import CONVERSATION, PAIR
from chat.errors import InputError
from chat.runner import RunSummary, backend_identities, check_settings, claim_output, config_settings, run_jobs
from judge.base import JUDGES, Judge, judge_pairs
from judge.config import JudgeConfig
from judge import llm as _llm_judges  # noqa: F401  (registers llm-pairwise and llm-grade)
from judge.rm_judge import RMJudge
from judge.verdicts import GradeRecord, VerdictRecord, pair_category, pair_names

#: Pairs handed to an RM judge at once (it batches by length inside).
RM_BATCH = 64


def build_judge(config: JudgeConfig, ledger: UsageLedger | None = None,
                cache_path: Path | None = None) -> tuple[Judge, dict[str, ChatBackend]]:
    """The configured judge and the backends it holds (close them with `aclose_backends`)."""
    judge_class = JUDGES.get(config.judge)
    config.check_prompt()
    backends: Mapping[str, ChatBackend] = {}
    if judge_class is not RMJudge:
        backends = build_backends(config.backend_section(), ledger, cache_path)
    return judge_class.from_config(config, backends), dict(backends)


def load_items(path: str | Path, format: str | None, want: str) -> tuple[str, list[Any]]:
    """(kind, records) of an input: preference pairs for `judge pairs`, conversations (or both sides of pairs) for grading."""
    format = format or detect_format(path)
    kind = FORMATS.get(format).kind
    if want == PAIR and kind != PAIR:
        raise InputError(str(path), None, "format", f"format {format!r} holds {kind}s; "
                         "`judge pairs` needs preference pairs (two conversations per row)")
    if kind == PAIR:
        pairs = load_pairs(path, format)
        return kind, pairs if want == PAIR else [c for pair in pairs for c in (pair.chosen, pair.rejected)]
    if kind != CONVERSATION:
        raise InputError(str(path), None, "format", f"format {format!r} holds {kind}s, not conversations")
    return kind, load_conversations(path, format)


def judge_settings(config: JudgeConfig, judge: Judge) -> dict[str, Any]:
    """What decides a judge job's records (the safe-resume fingerprint, `chat.runner.fingerprint`): the config's
    record-changing fields, the judge's name (kind, backend, prompt version, verdict mode) and its backend's
    identity."""
    backend = getattr(judge, "backend", None)
    return {**config_settings("judge", config), "judge.name": judge.name,
            **(backend_identities({"judge": backend}) if backend is not None else {})}


def _count_verdict(counters: Counter, winner: str | None, detail: dict[str, Any]) -> None:
    counters[f"winner_{winner}" if winner is not None else "unparseable"] += 1
    counters["unparseable_orders"] += int(detail.get("unparseable_orders", 0))
    counters["reasks"] += int(detail.get("reasks", 0))


async def judge_pairs_job(config: JudgeConfig, input_path: str | Path, output: str | Path, *, progress: bool = True,
                          cache_path: Path | None = None, judge: Judge | None = None,
                          overwrite: bool = False) -> RunSummary:
    """Judge every preference pair of `input_path` (chosen shown as A, rejected as B; LLM judges run both
    orders); one VerdictRecord a line in `output`, resumable (refused when `output` was written with other
    settings, unless `overwrite`, which starts it over)."""
    _, pairs = load_items(input_path, config.format, PAIR)
    ledger = UsageLedger()
    backends: dict[str, ChatBackend] = {}
    if not overwrite:          # refused before any model is loaded; the judge's name and backend are checked next
        check_settings(output, config_settings("judge", config))
    if judge is None:
        judge, backends = build_judge(config, ledger, cache_path)
    counters: Counter = Counter()

    def record(pair: PreferencePair, verdict: Any) -> dict[str, Any]:
        a, b = pair_names(pair)
        _count_verdict(counters, verdict.winner, verdict.detail)
        return VerdictRecord(pair.id, a, b, verdict.winner, judge.name, pair_category(pair), config.turn,
                             verdict.detail).to_dict()

    async def batch_worker(batch: list[PreferencePair]) -> list[dict[str, Any]]:
        verdicts = await judge_pairs(judge, [(p.chosen, p.rejected) for p in batch], config.turn,
                                     [p.meta.get("reference") for p in batch])
        return [record(p, v) for p, v in zip(batch, verdicts)]

    async def worker(pair: PreferencePair) -> dict[str, Any]:
        verdict = await judge.judge_pair(pair.chosen, pair.rejected, config.turn, pair.meta.get("reference"))
        return record(pair, verdict)

    batched = isinstance(judge, RMJudge)
    try:
        claim_output(output, judge_settings(config, judge), overwrite=overwrite)
        return await run_jobs(pairs, None if batched else worker, output, batch_worker=batch_worker if batched else None,
                              batch_size=RM_BATCH if batched else 1, concurrency=1 if batched else config.concurrency,
                              ledger=ledger, counters=counters, description=f"judge pairs ({judge.name})",
                              progress=progress, limit=config.limit, input_name=str(input_path))
    finally:
        await aclose_backends(backends)


async def grade_job(config: JudgeConfig, input_path: str | Path, output: str | Path, *, progress: bool = True,
                    cache_path: Path | None = None, judge: Judge | None = None, overwrite: bool = False) -> RunSummary:
    """Grade every conversation of `input_path` (both sides of pair inputs); one GradeRecord a line, resumable
    (refused when `output` was written with other settings, unless `overwrite`, which starts it over)."""
    _, conversations = load_items(input_path, config.format, "conversation")
    ledger = UsageLedger()
    backends: dict[str, ChatBackend] = {}
    if not overwrite:          # refused before any model is loaded; the judge's name and backend are checked next
        check_settings(output, config_settings("judge", config))
    if judge is None:
        judge, backends = build_judge(config, ledger, cache_path)
    counters: Counter = Counter()

    async def worker(conversation: Conversation) -> dict[str, Any]:
        grade = await judge.grade(conversation, config.turn, conversation.meta.get("reference"))
        counters["graded" if grade.score is not None else "unparseable"] += 1
        counters["unparseable_turns"] += int(grade.detail.get("unparseable_turns", 0))
        counters["reasks"] += int(grade.detail.get("reasks", 0))
        category = str(conversation.meta.get("category") or conversation.meta.get("task")
                       or conversation.meta.get("source") or "")
        return GradeRecord(conversation.id, grade.score, judge.name, category, config.turn, grade.detail).to_dict()

    try:
        claim_output(output, judge_settings(config, judge), overwrite=overwrite)
        return await run_jobs(conversations, worker, output, concurrency=config.concurrency, ledger=ledger,
                              counters=counters, description=f"judge grade ({judge.name})", progress=progress,
                              limit=config.limit, input_name=str(input_path))
    finally:
        await aclose_backends(backends)
