"""`MusicConfig`: the options of `turnwise augment music` (docs/methods.md, MUSIC), TRL-style with help text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError

#: How the divergence turn d is drawn.
DIVERGENCE_DRAWS = ("uniform", "fixed", "final")
#: At which turns the rejected branch's assistant gets the contrastive instruction.
CONTRAST_SCOPES = ("from_divergence", "divergence_only")
#: Roles a `backends:` mapping may name; `user`, `assistant` and `contrast` fall back to `simulator`.
BACKEND_ROLES = ("simulator", "user", "assistant", "contrast")


def _default_backends() -> dict[str, Any]:
    return {"simulator": {"kind": "local", "model": "embedded"}}


@dataclass
class MusicConfig:
    r"""Configuration of `turnwise augment music` (docs/methods.md, MUSIC).

    Parameters that control the simulator:
        backends: role -> backend spec. `simulator` plays every role unless `user` (the simulated
            user), `assistant` (both branches' normal answers) or `contrast` (writes the swapped
            instruction and answers it on the rejected branch) name their own backend.
        temperature, max_tokens, seed, max_reasks, reask_temperature; user_temperature, user_max_tokens and
            user_attempts for the simulated user's turns (short follow-ups: a small max_tokens also drops a "user" that
            starts answering like an assistant, as truncated_turn).
    Parameters that control the pair construction:
        turns (T), seed_turns (k), divergence (+ divergence_turn), contrast_scope, reuse_seed_rejected.
    Parameters that control filtering:
        drop_truncated, max_conversation_tokens (approximate: chat/token_estimate.py).
    Parameters that control the run:
        concurrency, limit, input_format, input_on_error.

    Open choices of the paper and the defaults taken here (docs/methods.md, MUSIC steps 2-6): d is drawn uniformly
    in k..T; the contrast applies at every turn >= d; the seed's own rejected response is not reused;
    pairs whose branches are identical after d, break role alternation or fail to parse are dropped.
    """

    # Parameters that control the simulator
    backends: dict = field(
        default_factory=_default_backends,
        metadata={"help": "Role -> backend spec (roles: simulator, user, assistant, contrast; the last three fall "
                          "back to simulator), e.g. {simulator: {kind: openai, base_url: ..., model: ...}}."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of every simulator call."})
    max_tokens: int = field(default=512, metadata={"help": "Maximum tokens per generated reply."})
    user_temperature: float = field(
        default=0.7, metadata={"help": "Sampling temperature of the simulated user's turns."})
    user_max_tokens: int = field(
        default=128, metadata={"help": "Maximum tokens of a simulated user turn (a follow-up is short)."})
    user_attempts: int = field(
        default=3,
        metadata={"help": "Tries per simulated user turn while the content filters reject it (scaffolding, "
                          "degenerate or repeated text); each try has its own derived seed. Then the pair is dropped."})
    seed: int = field(
        default=0,
        metadata={"help": "Global seed; each item's seed is derived from it and the item id, so results do not "
                          "depend on input order or concurrency."})
    max_reasks: int = field(
        default=2, metadata={"help": "Re-asks after an unparseable contrastive-step reply before the pair is dropped."})
    reask_temperature: float | None = field(
        default=None,
        metadata={"help": "Sampling temperature of those re-asks (at least `temperature`); unset: `temperature`. "
                          "A small model re-asked at a low temperature often copies the instruction again."})

    # Parameters that control the pair construction
    turns: int = field(default=5, metadata={"help": "T: user turns in each synthesized conversation (paper: 5)."})
    seed_turns: int = field(
        default=1,
        metadata={"help": "k: user turns taken from the input row as the seed prefix (1 = first user turn). The "
                          "row's assistant answers between them are kept; shorter rows give what they have."})
    divergence: str = field(
        default="uniform",
        metadata={"help": "How the divergence turn d is drawn: uniform in k..T, fixed (divergence_turn), or final "
                          "(d = T: the final-turn-only ablation).", "choices": list(DIVERGENCE_DRAWS)})
    divergence_turn: int | None = field(
        default=None, metadata={"help": "d for divergence=fixed (k <= d <= T)."})
    contrast_scope: str = field(
        default="from_divergence",
        metadata={"help": "from_divergence: the rejected assistant answers a swapped instruction at every turn >= d; "
                          "divergence_only: only at d (later turns answered normally, the error stays in history).",
                  "choices": list(CONTRAST_SCOPES)})
    reuse_seed_rejected: bool = field(
        default=False,
        metadata={"help": "When d is the seed's own final turn (d = 1 for single-turn pairs), use the seed pair's "
                          "chosen and rejected responses at d instead of generating them."})

    # Parameters that control filtering
    drop_truncated: bool = field(
        default=True,
        metadata={"help": "Drop a pair when a turn stops at max_tokens (finish_reason 'length'). Turn off only for "
                          "smoke runs with a tiny max_tokens."})
    max_conversation_tokens: int = field(
        default=4096,
        metadata={"help": "Drop a pair whose longer branch exceeds this many tokens (approximate: characters / 4 "
                          "plus 4 per message)."})

    # Parameters that control the run
    concurrency: int = field(default=8, metadata={"help": "Seeds synthesized at once."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N seeds of the input."})
    input_format: str | None = field(
        default=None, metadata={"help": "Input format (default: detected from the first row)."})
    input_on_error: str = field(
        default="skip",
        metadata={"help": "Invalid input rows: skip (counted as input_rows_rejected) or fail (stop with "
                          "PATH:LINE: field: reason).", "choices": ["skip", "fail"]})

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ConfigError(f"turns: expected at least 1, got {self.turns}")
        if not 1 <= self.seed_turns <= self.turns:
            raise ConfigError(f"seed_turns: expected 1..turns ({self.turns}), got {self.seed_turns}")
        if self.divergence not in DIVERGENCE_DRAWS:
            raise ConfigError(f"divergence: expected one of {', '.join(DIVERGENCE_DRAWS)}, got {self.divergence!r}")
        if self.divergence == "fixed":
            if self.divergence_turn is None:
                raise ConfigError("divergence_turn: required with divergence=fixed")
            if not self.seed_turns <= self.divergence_turn <= self.turns:
                raise ConfigError(f"divergence_turn: expected seed_turns..turns ({self.seed_turns}..{self.turns}), "
                                  f"got {self.divergence_turn}")
        elif self.divergence_turn is not None:
            raise ConfigError(f"divergence_turn: only used with divergence=fixed (divergence is {self.divergence!r})")
        if self.contrast_scope not in CONTRAST_SCOPES:
            raise ConfigError(f"contrast_scope: expected one of {', '.join(CONTRAST_SCOPES)}, "
                              f"got {self.contrast_scope!r}")
        check_run_fields(self)
        if self.max_reasks < 0:
            raise ConfigError(f"max_reasks: expected 0 or more, got {self.max_reasks}")
        if self.user_temperature < 0:
            raise ConfigError(f"user_temperature: expected >= 0, got {self.user_temperature}")
        if self.reask_temperature is not None and self.reask_temperature < 0:
            raise ConfigError(f"reask_temperature: expected >= 0, got {self.reask_temperature}")
        if self.user_attempts < 1:
            raise ConfigError(f"user_attempts: expected at least 1, got {self.user_attempts}")
        if self.user_max_tokens < 1:
            raise ConfigError(f"user_max_tokens: expected at least 1, got {self.user_max_tokens}")
        if self.max_conversation_tokens < 1:
            raise ConfigError(f"max_conversation_tokens: expected at least 1, got {self.max_conversation_tokens}")
        if not isinstance(self.backends, dict) or "simulator" not in self.backends:
            raise ConfigError("backends: expected a mapping with at least a 'simulator' entry")
        check_backend_roles(self.backends, BACKEND_ROLES)
