"""Config of `turnwise generate coevol` (CoEvol, docs/methods.md), TRL-style with help text."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError
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
        iterations, context_turns, max_suggestions, temperature, max_tokens, max_words, max_reasks, seed.
    Parameters that control the judge:
        judge (`llm`: both orders, merged, a disagreement is a tie; `rm`: score difference), rm, rm_device,
        rm_margin.
    Parameters that control the run:
        concurrency, limit, input_format, input_on_error.

    Calls per refined assistant turn and iteration: 2 (stage-1 debate) + 2 (stage-2 debate) + 1 advisor
    + 1 editor + 2 judge orders (0 with the RM judge), plus re-asks. An iteration stops the turn when the
    edit is not strictly better, when the advisor has no suggestion, or when a step never parses; the
    previous response is kept.
    """

    # Parameters that control the agents
    backends: dict = field(
        default_factory=default_backends,
        metadata={"help": "Role -> backend spec: positive, critical (or debater for both), advisor, editor, judge; "
                          "`default` serves every role without its own entry."})
    iterations: int = field(default=3, metadata={"help": "Debate-advise-edit-judge iterations per turn at most "
                                                         "(paper: 3)."})
    context_turns: int = field(
        default=3, metadata={"help": "Previous (user, assistant) exchanges shown as context of a refined turn "
                                     "(paper: 3)."})
    max_suggestions: int = field(default=3, metadata={"help": "Editing suggestions kept from the advisor (paper: 3)."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature of every agent call (paper: 0)."})
    max_tokens: int = field(default=768, metadata={"help": "Maximum tokens per reply."})
    max_words: int = field(default=200, metadata={"help": "Word limit asked of each debater's review."})
    max_reasks: int = field(default=2, metadata={"help": "Re-asks of a step whose reply lacks its required part."})
    seed: int = field(default=0, metadata={"help": "Global seed; each call's seed derives from it, the item and "
                                                   "the step."})

    # Parameters that control the judge
    judge: str = field(default="llm", metadata={"help": "llm (pairwise, both orders) or rm (reward difference).",
                                                "choices": list(COEVOL_JUDGES)})
    rm: str | None = field(
        default=None, metadata={"help": "Reward model path: the judge when judge=rm; otherwise, when given, it "
                                        "scores every turn before and after refinement."})
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
        if self.context_turns < 0 or self.max_reasks < 0:
            raise ConfigError("context_turns, max_reasks: expected 0 or more")
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
