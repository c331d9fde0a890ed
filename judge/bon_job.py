"""`judge bon` as a resumable runner job: one record per prompt (every N), then the win-rate report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from chat.backends import UsageLedger, aclose_backends, build_backends
from chat.backends.base import ChatBackend
from chat.conversation import Conversation
from chat.errors import ConfigError
from chat.formats import load_conversations
from chat.runner import RunSummary, read_records, run_jobs
from judge.base import JUDGES, Judge
from judge.bon import BonConfig, compare_rms_on_prompt, write_bon_report
from judge.config import JudgeConfig
from judge import llm as _llm_judges  # noqa: F401  (registers llm-pairwise and llm-grade)
from judge.rm_judge import RMJudge
from rm.scorer import ConversationScorer, LockedScorer, load_reward_model

OUTPUT_FILE = "conversations.jsonl"


async def run_bon_job(config: BonConfig, judge_config: JudgeConfig, backend_section: Mapping[str, Any], *,
                      rm_a: str | ConversationScorer, rm_b: str | ConversationScorer, policy_role: str,
                      user_role: str, prompts: str | Path | list[Conversation], output_dir: str | Path,
                      prompts_format: str | None = None, device: str | None = None, progress: bool = True,
                      cache_path: Path | None = None) -> tuple[RunSummary, dict[str, Any]]:
    """Run the best-of-N comparison over every prompt into `output_dir/conversations.jsonl` (resumable),
    then write report.json / report.md / win_rate.png from all records. `rm_a` / `rm_b` are RM paths or
    already-loaded scorers (anything with `score(conversations) -> list[float]`)."""
    config.validate()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    items = prompts if isinstance(prompts, list) else load_conversations(prompts, prompts_format)
    for role in (policy_role, user_role):
        if role not in backend_section:
            raise ConfigError(f"backends.{role}: no backend with this role (configured: {', '.join(backend_section)})")
    ledger = UsageLedger()
    backends: dict[str, ChatBackend] = build_backends(backend_section, ledger, cache_path)
    try:
        judge_class = JUDGES.get(judge_config.judge)
        judge: Judge = judge_class.from_config(judge_config, {} if judge_class is RMJudge else backends)
        scorer_a = LockedScorer(load_reward_model(rm_a, device) if isinstance(rm_a, str) else rm_a, _name(rm_a, "rm-a"))
        scorer_b = LockedScorer(load_reward_model(rm_b, device) if isinstance(rm_b, str) else rm_b, _name(rm_b, "rm-b"))
        counters: Counter = Counter()

        async def worker(prompt: Conversation) -> dict[str, Any]:
            return await compare_rms_on_prompt(prompt, scorer_a, scorer_b, policy=backends[policy_role],
                                               user_simulator=backends[user_role], judge=judge, config=config,
                                               counters=counters)

        output = output_dir / OUTPUT_FILE
        summary = await run_jobs(items, worker, output, concurrency=config.concurrency, ledger=ledger,
                                 counters=counters, description="judge bon", progress=progress, limit=config.limit,
                                 input_name=str(prompts) if not isinstance(prompts, list) else "prompts")
    finally:
        await aclose_backends(backends)
    records = read_records(output)
    calls = {key: value for key, value in summary.extra.items() if "calls" in key}
    report = write_bon_report(records, output_dir, {"rm_a": scorer_a.name, "rm_b": scorer_b.name, "judge": judge.name,
                                                    "turns": config.turns, "n_values": config.n_values,
                                                    "calls": calls, "usage": summary.usage})
    return summary, report


def _name(model: Any, default: str) -> str:
    return model if isinstance(model, str) else getattr(model, "name", "") or default
