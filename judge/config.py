"""JudgeConfig: which judge, its backends and options, from configs/judge/*.yaml plus CLI overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: How `llm-*` judges read a verdict (JudgeConfig.verdict_mode).
VERDICT_MODES = ("text", "logprob")

#: The backend `llm-*` judges use when a config names none: the embedded local model.
DEFAULT_BACKENDS = {"judge": {"kind": "local", "model": "embedded"}}


@dataclass
class JudgeConfig:
    """Options of `turnwise judge pairs|grade` (and of the judge inside `turnwise judge bon`).

    Parameters that choose the judge:
        judge: registered judge name (`turnwise list judges`).
        backends: role -> backend mapping (DESIGN.md "LLM backends"); LLM judges use `backend_role`.
        backend_role: which entry of `backends` the judge calls.
        rm: reward model path for the `rm` judge (full, LoRA adapter, quantized, or `minilm` / `embedded`).
    Parameters of LLM judges:
        prompt_version: judge prompt template version (judge/prompts/<version>/).
        prompt_file, prompt_name: a user's judge prompt instead (FastChat judge_prompts.jsonl and the name of one
            of its prompts, or a Jinja template; judge/user_prompts.py); its output_format decides the parsing.
        max_tokens, temperature, seed: generation parameters of each judge call.
        max_reasks: extra requests after an unreadable verdict before it is counted unparseable.
        verdict_mode: `text` (the judge explains, then writes [[A]] / Rating: [[N]]) or `logprob` (one
            token; P(A), P(B), P(tie) or the grade distribution from its top alternatives, both orders
            averaged; needs a backend that returns logprobs). Part of the judge's name and each record.
        per_turn: `llm-grade` on multi-turn conversations: grade every turn and take the minimum
            (MT-Bench-101); false grades the final turn only.
    Parameters of the RM judge:
        tie_margin: |score_a - score_b| <= tie_margin is a tie (RM scores; `llm-grade` grades;
            P(A) and P(B) of `llm-pairwise` logprob verdicts).
        device: torch device for the RM.
    Parameters of the job:
        turn: judge this 1-based user turn only (default: the whole conversation).
        format: reader for --input (auto-detected when unset).
        concurrency: items judged at once. limit: judge only the first N items.
    """

    judge: str = field(default="llm-pairwise", metadata={"help": "registered judge name (turnwise list judges)"})
    backends: dict[str, Any] | None = field(default=None, metadata={
        "help": "role -> backend mapping, YAML (default: {judge: {kind: local, model: embedded}})"})
    backend_role: str = field(default="judge", metadata={"help": "entry of backends that LLM judges call"})
    rm: str | None = field(default=None, metadata={"help": "reward model path for the rm judge"})
    prompt_version: str = field(default="v1", metadata={"help": "judge prompt template version"})
    prompt_file: str | None = field(default=None, metadata={
        "help": "llm judges: a FastChat judge_prompts.jsonl (with --prompt-name) or a Jinja template instead of "
                "turnwise's prompts (judge/user_prompts.py documents the variables)"})
    prompt_name: str | None = field(default=None, metadata={
        "help": "the prompt of --prompt-file to use, e.g. pair-v2, single-v1 (FastChat names)"})
    max_tokens: int = field(default=512, metadata={"help": "max tokens of each judge reply"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature of the judge"})
    seed: int | None = field(default=0, metadata={"help": "sampling seed of judge calls"})
    max_reasks: int = field(default=1, metadata={"help": "re-asks after an unreadable verdict"})
    verdict_mode: str = field(default="text", metadata={
        "help": "llm judges: text (reasoning, then [[A]] / Rating: [[N]]) or logprob (one token, probabilities "
                "from its top logprobs)", "choices": VERDICT_MODES})
    per_turn: bool = field(default=True, metadata={"help": "llm-grade: grade every turn, dialogue score = minimum"})
    tie_margin: float = field(default=0.0, metadata={
        "help": "score difference (rm, llm-grade) or P(A) - P(B) difference (logprob pairwise) counted as a tie"})
    device: str | None = field(default=None, metadata={"help": "rm judge: torch device (default cuda if available)"})
    turn: int | None = field(default=None, metadata={"help": "judge only this 1-based user turn"})
    format: str | None = field(default=None, metadata={"help": "reader for --input (auto-detected when unset)"})
    concurrency: int = field(default=8, metadata={"help": "items judged at once"})
    limit: int | None = field(default=None, metadata={"help": "judge only the first N items"})

    def check_prompt(self) -> None:
        """Fail on a bad --prompt-file / --prompt-name before any backend or model is loaded."""
        from chat.errors import ConfigError
        from judge.user_prompts import load_judge_prompt

        if self.prompt_name and not self.prompt_file:
            raise ConfigError("prompt_name: needs --prompt-file (FastChat's judge_prompts.jsonl is not shipped)")
        if self.prompt_file:
            load_judge_prompt(self.prompt_file, self.prompt_name)

    def backend_section(self) -> dict[str, Any]:
        return dict(self.backends) if self.backends else dict(DEFAULT_BACKENDS)
