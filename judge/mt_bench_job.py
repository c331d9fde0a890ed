"""`judge mt-bench`: FastChat llm_judge's gen_judgment on MT-Bench answer files, writing FastChat's model_judgment JSONL.

docs/methods.md, Judge step 5 (MT-Bench, Zheng et al. 2023). As FastChat's `gen_judgment.py`:
turn 1 is judged with the prompt `--prompt-name` (pair-v2 / single-v1), turn 2 with its
"-multi-turn" sibling; questions of the categories math, reasoning and coding use the math prompt
(pair-math-v1 / single-math-v1 and its sibling) with the reference answers when both are available.
Pairwise-baseline shows each pair in both orders, model_1 = the evaluated model, model_2 = the
baseline. Rows carry FastChat's fields (plus `id` and `category`), so show_result.py reads them:

    pairwise: question_id, model_1, model_2, g1_winner, g2_winner, judge [name, prompt], g1_user_prompt,
              g1_judgment, g2_user_prompt, g2_judgment, turn, tstamp   (winner: model_1 / model_2 / tie / error)
    single:   question_id, model, judge [name, prompt], user_prompt, judgment, score (-1 unparseable), turn, tstamp
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from chat.backends import UsageLedger, aclose_backends, build_backends
from chat.backends.base import ChatBackend
from chat.conversation import Conversation
from chat.errors import ConfigError, InputError
from chat.formats import load_conversations
from chat.runner import RunSummary, run_jobs
from judge.config import JudgeConfig
from judge.llm import LLMGradeJudge, LLMOptions, LLMPairwiseJudge
from judge.user_prompts import (JudgePrompt, load_prompt_file, pairwise_values, render_messages, single_values)

#: FastChat's NEED_REF_CATS: categories judged with the reference-guided (math) prompt.
NEED_REF_CATEGORIES = ("math", "reasoning", "coding")
MODES = ("pairwise-baseline", "single")
_G1 = {"A": "model_1", "B": "model_2", "tie": "tie", None: "error"}
_G2 = {"A": "model_2", "B": "model_1", "tie": "tie", None: "error"}


@dataclass
class Match:
    """One judgment to make: a question's turn for one model (single) or a model against the baseline."""

    question_id: Any
    category: str
    turn: int
    model_1: str
    answer_1: Conversation
    model_2: str | None = None
    answer_2: Conversation | None = None
    references: list[str] | None = None
    math: bool = False

    @property
    def id(self) -> str:
        return f"{self.question_id}:{self.model_1}:{self.model_2 or ''}:{self.turn}"


def model_answers(path: str | Path) -> tuple[str, dict[str, Conversation]]:
    """(model name, question_id -> two-turn conversation) of one FastChat answer file (question.jsonl beside it
    or one level up); the name is the file's model_id, else its stem (FastChat names models by file)."""
    conversations = load_conversations(path, "mt-bench-answers")
    names = {c.meta.get("model_id") for c in conversations if c.meta.get("model_id")}
    name = names.pop() if len(names) == 1 else Path(path).name.removesuffix(".jsonl")
    return name, {str(c.meta["question_id"]): c for c in conversations}


def prompt_names(prompts: dict[str, JudgePrompt], general: str, math: str | None) -> dict[tuple[bool, int], str]:
    """(math?, turn) -> prompt name, FastChat's judges default / math / default-mt / math-mt; missing
    siblings (a file without multi-turn prompts) leave that turn unjudged."""
    if general not in prompts:
        raise ConfigError(f"prompt_name: no prompt {general!r} in the prompt file (known: {', '.join(prompts)})")
    names = {(False, 1): general}
    if f"{general}-multi-turn" in prompts:
        names[(False, 2)] = f"{general}-multi-turn"
    if math and math in prompts:
        names[(True, 1)] = math
        if f"{math}-multi-turn" in prompts:
            names[(True, 2)] = f"{math}-multi-turn"
    return names


def make_matches(mode: str, answers: dict[str, dict[str, Conversation]], baseline: str | None,
                 references: dict[str, list[str]], names: dict[tuple[bool, int], str]) -> list[Match]:
    """Every (question, turn, model[, baseline]) to judge, in FastChat's order: models, then questions, then turns."""
    matches = []
    for model, by_question in answers.items():
        if mode == "pairwise-baseline" and model == baseline:
            continue
        for question_id, conversation in by_question.items():
            other = answers[baseline].get(question_id) if baseline else None
            if mode == "pairwise-baseline" and other is None:
                continue
            category = str(conversation.meta.get("category") or "")
            math = category in NEED_REF_CATEGORIES and question_id in references and (True, 1) in names
            for turn in (1, 2):
                if (math, turn) not in names or conversation.turns < turn or (other is not None and other.turns < turn):
                    continue
                matches.append(Match(conversation.meta["question_id"], category, turn, model, conversation,
                                     baseline if mode == "pairwise-baseline" else None, other,
                                     references.get(question_id) if math else None, math))
    return matches


async def mt_bench_job(config: JudgeConfig, *, mode: str, answer_files: Sequence[str | Path],
                       baseline_file: str | Path | None, reference_file: str | Path | None, output: str | Path,
                       prompt_name: str | None = None, math_prompt_name: str | None = None,
                       judge_model: str | None = None, progress: bool = True,
                       backends: dict[str, ChatBackend] | None = None) -> RunSummary:
    """Judge MT-Bench answers into FastChat's model_judgment layout (module docstring), resumable."""
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if not config.prompt_file:
        raise ConfigError("--prompt-file: give FastChat's judge_prompts.jsonl (it is not shipped with turnwise)")
    if mode == "pairwise-baseline" and baseline_file is None:
        raise ConfigError("--baseline: pairwise-baseline needs the baseline model's answers")
    pairwise = mode == "pairwise-baseline"
    prompts: dict[str, JudgePrompt] = dict(load_prompt_file(Path(config.prompt_file)))
    names = prompt_names(prompts, prompt_name or ("pair-v2" if pairwise else "single-v1"),
                         math_prompt_name or ("pair-math-v1" if pairwise else "single-math-v1"))
    for name in set(names.values()):
        if prompts[name].type != ("pairwise" if pairwise else "single"):
            raise ConfigError(f"prompt_name: {name} is a {prompts[name].type} prompt; --mode {mode} needs "
                              f"{'pairwise' if pairwise else 'single'} prompts")
    answers = dict(model_answers(path) for path in answer_files)
    baseline = None
    if baseline_file is not None:
        baseline, baseline_answers = model_answers(baseline_file)
        answers.setdefault(baseline, baseline_answers)
    references: dict[str, list[str]] = {}
    if reference_file is not None:
        for conversation in load_conversations(reference_file, "mt-bench-answers"):
            references[str(conversation.meta["question_id"])] = [m.content for m in conversation.messages
                                                                 if m.role == "assistant"]
    matches = make_matches(mode, answers, baseline, references, names)
    if not matches:
        raise InputError(str(answer_files[0]), None, "question_id", "no question to judge (do the answer files "
                         "and the baseline answer the same questions?)")

    ledger = UsageLedger()
    owned = backends is None
    backends = backends if backends is not None else dict(build_backends(config.backend_section(), ledger, None))
    if config.backend_role not in backends:
        raise ConfigError(f"backends.{config.backend_role}: the judge needs a backend with this role")
    backend = backends[config.backend_role]
    judge_name = judge_model or getattr(backend, "name", "llm")
    judges = {}
    for key, name in names.items():
        options = LLMOptions(config.prompt_version, config.max_tokens, config.temperature, config.seed,
                             config.max_reasks, "text", config.tie_margin, prompts[name])
        judges[key] = LLMPairwiseJudge(backend, options) if pairwise else LLMGradeJudge(backend, options)
    counters: Counter = Counter()

    async def pairwise_worker(match: Match) -> dict[str, Any]:
        judge = judges[(match.math, match.turn)]
        prompt = prompts[names[(match.math, match.turn)]]
        turn = None if prompt.multi_turn else match.turn
        assert match.answer_2 is not None
        g1 = await judge.judge_order(match.answer_1, match.answer_2, turn, match.references)
        g2 = await judge.judge_order(match.answer_2, match.answer_1, turn, match.references)
        counters[f"g1_{_G1[g1.value]}"] += 1
        counters["reasks"] += g1.reasks + g2.reasks

        def user_prompt(first: Conversation, second: Conversation) -> str:
            return render_messages(prompt, pairwise_values(prompt, first, second, turn, match.references))[-1].content

        return {"id": match.id, "question_id": match.question_id, "model_1": match.model_1, "model_2": match.model_2,
                "g1_winner": _G1[g1.value], "g2_winner": _G2[g2.value], "judge": [judge_name, prompt.name],
                "g1_user_prompt": user_prompt(match.answer_1, match.answer_2), "g1_judgment": _last(g1.replies),
                "g2_user_prompt": user_prompt(match.answer_2, match.answer_1), "g2_judgment": _last(g2.replies),
                "turn": match.turn, "tstamp": time.time(), "category": match.category}

    async def single_worker(match: Match) -> dict[str, Any]:
        judge = judges[(match.math, match.turn)]
        prompt = prompts[names[(match.math, match.turn)]]
        result = await judge.grade_turn(match.answer_1, match.turn, match.references)
        counters["graded" if result.value is not None else "unparseable"] += 1
        counters["reasks"] += result.reasks
        values = single_values(prompt, match.answer_1, None if prompt.multi_turn else match.turn, match.references)
        return {"id": match.id, "question_id": match.question_id, "model": match.model_1,
                "judge": [judge_name, prompt.name], "user_prompt": render_messages(prompt, values)[-1].content,
                "judgment": _last(result.replies), "score": result.value if result.value is not None else -1,
                "turn": match.turn, "tstamp": time.time(), "category": match.category}

    try:
        return await run_jobs(matches, pairwise_worker if pairwise else single_worker, output,
                              item_id=lambda m: m.id, concurrency=config.concurrency, ledger=ledger,
                              counters=counters, description=f"judge mt-bench {mode} ({judge_name})",
                              progress=progress, limit=config.limit, input_name=str(answer_files[0]))
    finally:
        if owned:
            await aclose_backends(backends)


def _last(replies: Sequence[str | None]) -> str:
    """The judge's final reply (FastChat records one judgment; re-asks keep the last)."""
    return next((r for r in reversed(replies) if r is not None), "$ERROR$")
