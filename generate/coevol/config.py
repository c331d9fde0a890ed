"""Config of `turnwise generate coevol` (CoEvol, docs/methods.md), TRL-style with help text."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError
from generate.coevol.steps import ACCEPT_RULES, LENIENT
from generate.run_settings import default_backends

#: How the judge compares the old and the edited response.
COEVOL_JUDGES = ("llm", "rm")
#: Backend roles of CoEvol (`debater` serves both debaters; `default` every role without its own entry).
COEVOL_ROLES = ("default", "debater", "positive", "critical", "advisor", "editor", "judge")


@dataclass
class CoevolConfig:
    r"""Configuration of `turnwise generate coevol` (CoEvol, docs/methods.md).

    Parameters that control the agents:
        backends (roles positive, critical or debater for both, advisor, editor, judge; `default`),
        iterations, context_turns, max_suggestions, temperature, max_tokens, max_words, max_edit_words,
        max_reasks, seed.
    Parameters that control the judge:
        judge (`llm`: both orders, merged by accept_rule; `rm`: score difference), accept_rule, rm, rm_device,
        rm_margin.
    Parameters that control the run:
        concurrency, limit, input_format, input_on_error.

    Calls per refined assistant turn and iteration: 2 (stage-1 debate) + 2 (stage-2 debate) + 1 advisor
    + 1 editor + 2 judge orders (0 with the RM judge, and none for a truncated edit), plus re-asks. An
    iteration stops the turn when the merged verdict does not prefer the edit, when the edit is truncated (cut
    at max_tokens or over max_edit_words), when the advisor has no suggestion, or when a step never parses;
    the previous response is kept.
    """

    # Parameters that control the agents
    backends: dict = field(
        default_factory=default_backends,
        metadata={"help": "Role -> backend spec: positive, critical (or debater for both), advisor, editor, judge; "
                          "`default` serves every role without its own entry."})
    iterations: int = field(default=3, metadata={"help": "Debate-advise-edit-judge iterations per turn at most "
                                                         "(paper: 3)."})
    context_turns: int = field(
        default=3, metadata={"help": "Turns in the window of a refined turn, the current one included: every agent "
                                     "sees the context_turns - 1 (user, assistant) exchanges before it (public "
                                     "code's conv_wind_size 3: the current turn and 2 earlier ones; 1: none)."})
    max_suggestions: int = field(default=3, metadata={"help": "Editing suggestions kept from the advisor (paper: 3)."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature of every agent call (paper: 0)."})
    max_tokens: int = field(default=768, metadata={"help": "Maximum tokens per reply."})
    max_words: int = field(default=200, metadata={"help": "Word limit asked of each debater's review."})
    max_edit_words: int | None = field(
        default=None, metadata={"help": "Word budget of a rewrite, told to the editor; a longer edit counts as "
                                        "truncated and is not accepted, like one cut at max_tokens (finish_reason "
                                        "length). None: only the max_tokens cut."})
    max_reasks: int = field(default=2, metadata={"help": "Re-asks of a step whose reply lacks its required part."})
    seed: int = field(default=0, metadata={"help": "Global seed; each call's seed derives from it, the item and "
                                                   "the step."})

    # Parameters that control the judge
    judge: str = field(default="llm", metadata={"help": "llm (pairwise, both orders) or rm (reward difference).",
                                                "choices": list(COEVOL_JUDGES)})
    accept_rule: str = field(
        default=LENIENT, metadata={"help": "LLM judge: how both orders decide. lenient (public code): the edit is "
                                           "kept when it is preferred in one order and not the worse in the other, "
                                           "so (better, tie) is accepted; strict: both orders must prefer it.",
                                   "choices": list(ACCEPT_RULES)})
    rm: str | None = field(
        default=None, metadata={"help": "Reward model path: the judge when judge=rm; when given, it also scores "
                                        "every turn before and after refinement and every accepted edit before "
                                        "and after it."})
    rm_device: str | None = field(default=None, metadata={"help": "Device of the RM."})
    rm_margin: float = field(
        default=0.0, metadata={"help": "RM judge: the edit is better only if its reward exceeds the old one by "
                                       "more than this."})

    # Parameters that control the run
    concurrency: int = field(default=8, metadata={"help": "Conversations refined at once."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N input conversations."})
    input_format: str | None = field(default=None, metadata={"help": "Input format (default: detected)."})
    input_on_error: str = field(
        default="skip", metadata={"help": "Invalid input rows: skip (counted) or fail.", "choices": ["skip", "fail"]})

    def __post_init__(self) -> None:
        check_run_fields(self)
        for name in ("iterations", "max_suggestions", "max_words"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.context_turns < 1:
            raise ConfigError(f"context_turns: expected at least 1 (the current turn), got {self.context_turns}")
        if self.max_reasks < 0:
            raise ConfigError(f"max_reasks: expected 0 or more, got {self.max_reasks}")
        if self.max_edit_words is not None and self.max_edit_words < 1:
            raise ConfigError(f"max_edit_words: expected at least 1 or null, got {self.max_edit_words}")
        if self.accept_rule not in ACCEPT_RULES:
            raise ConfigError(f"accept_rule: expected one of {', '.join(ACCEPT_RULES)}, got {self.accept_rule!r}")
        if self.judge not in COEVOL_JUDGES:
            raise ConfigError(f"judge: expected one of {', '.join(COEVOL_JUDGES)}, got {self.judge!r}")
        if self.judge == "rm" and not self.rm:
            raise ConfigError("rm: judge=rm needs a reward model path")
        if self.rm_margin < 0:
            raise ConfigError(f"rm_margin: expected >= 0, got {self.rm_margin}")
        check_backend_roles(self.backends, COEVOL_ROLES)
        needed = {"positive": ("positive", "debater"), "critical": ("critical", "debater"), "advisor": ("advisor",),
                  "editor": ("editor",)}
        if self.judge == "llm":
            needed["judge"] = ("judge",)
        for role, names in needed.items():
            if not {*names, "default"} & set(self.backends):
                raise ConfigError(f"backends: no {' or '.join(repr(n) for n in names)} entry and no 'default' entry "
                                  f"(for the {role} role)")
