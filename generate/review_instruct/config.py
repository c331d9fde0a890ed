"""Config of `turnwise generate review-instruct` (Review-Instruct, docs/methods.md), TRL-style with help text."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError
from generate.review_instruct.steps import REVIEWER_PERSONAS
from generate.run_settings import default_backends

#: Who decides breadth or depth (docs/methods.md, Review-Instruct step 4).
CHAIRMAN_DECIDES, MAJORITY_VOTE = "chairman", "majority_vote"
#: How the reviewers differ (docs/methods.md, Review-Instruct step 3).
DIVERSE, IDENTICAL = "diverse", "identical"


@dataclass
class ReviewInstructConfig:
    r"""Configuration of `turnwise generate review-instruct` (Review-Instruct, docs/methods.md).

    Parameters that control the agents:
        backends: role -> backend spec; roles candidate, reviewer (all reviewers) or reviewer_1..N
            (one each), chairman; `default` serves every role without its own entry.
        reviewers (N), rounds (R), review (False = the no-review ablation), ask_after_last_round,
        temperature, max_tokens, max_words, max_reasks, seed.
    Parameters that control the review panel and the direction:
        direction (chairman | majority_vote), reviewer_panel (diverse | identical), reviewer_personas,
        reviewer_temperatures.
    Parameters that control the reward model:
        rm, rm_device, rm_reviewer, rm_vote_threshold, rm_filter_threshold.
    Parameters that control the run:
        concurrency, limit, input_format, input_on_error.

    Calls per conversation: R x (1 candidate + N reviewers + 1 chairman) plus re-asks (the chairman's
    question after the last round is kept in meta as `next_question`; ask_after_last_round=false saves
    that call). The chairman reads the reviews and decides breadth or depth itself (direction=chairman, as the
    paper's code does); direction=majority_vote decides by the votes instead: breadth when most are positive,
    depth when most are negative, a tie is depth. A diverse panel cycles reviewer_personas and (on one shared
    reviewer backend) reviewer_temperatures over the N reviewers.
    """

    # Parameters that control the agents
    backends: dict = field(
        default_factory=default_backends,
        metadata={"help": "Role -> backend spec: candidate, reviewer or reviewer_1..N, chairman; `default` serves "
                          "every role without its own entry."})
    reviewers: int = field(default=3, metadata={"help": "N: LLM reviewers per round (1 = the one-reviewer ablation)."})
    rounds: int = field(default=2, metadata={"help": "R: rounds = (question, answer) turns per conversation."})
    review: bool = field(
        default=True,
        metadata={"help": "Run the review stage; false = the no-review ablation (the chairman sees only the answer)."})
    ask_after_last_round: bool = field(
        default=True,
        metadata={"help": "Let the chairman ask after the last round too (kept as meta.next_question)."})
    temperature: float = field(default=0.1, metadata={"help": "Sampling temperature of every agent call (paper: ~0.1)."})
    max_tokens: int = field(default=768, metadata={"help": "Maximum tokens per reply."})
    max_words: int = field(
        default=300, metadata={"help": "Word limit of the visible part of answers and reviews (paper: ~300)."})
    max_reasks: int = field(
        default=2, metadata={"help": "Re-asks of a step whose reply lacks its required part (paper: at most 2)."})
    seed: int = field(default=0, metadata={"help": "Global seed; each call's seed derives from it, the item and the step."})

    # Parameters that control the review panel and the direction
    direction: str = field(
        default=CHAIRMAN_DECIDES,
        metadata={"help": "Who decides breadth or depth: chairman (it reads the reviews and replies with its decision "
                          "and question, as the paper's code does) or majority_vote (the ablation: the reviewers' "
                          "votes decide, the chairman is told the direction).",
                  "choices": [CHAIRMAN_DECIDES, MAJORITY_VOTE]})
    reviewer_panel: str = field(
        default=DIVERSE,
        metadata={"help": "diverse: reviewer i takes the i-th of reviewer_personas and of reviewer_temperatures "
                          "(cycled; on several distinct reviewer backends the backends differ instead and every "
                          "reviewer samples at `temperature`); identical: N copies of one generic reviewer at "
                          "`temperature`.", "choices": [DIVERSE, IDENTICAL]})
    reviewer_personas: list[str] = field(
        default_factory=lambda: list(REVIEWER_PERSONAS),
        metadata={"help": f"Personas of a diverse panel, cycled over the reviewers ({', '.join(REVIEWER_PERSONAS)})."})
    reviewer_temperatures: list[float] = field(
        default_factory=lambda: [0.1, 0.4, 0.7],
        metadata={"help": "Sampling temperatures of a diverse panel on one reviewer backend, cycled over the "
                          "reviewers."})

    # Parameters that control the reward model
    rm: str | None = field(default=None, metadata={"help": "Reward model path (turnwise rm train output); none = no RM."})
    rm_device: str | None = field(default=None, metadata={"help": "Device of the RM (default: cuda if available, else cpu)."})
    rm_reviewer: bool = field(
        default=True, metadata={"help": "With an RM: it votes as one more reviewer (score >= rm_vote_threshold)."})
    rm_vote_threshold: float = field(default=0.0, metadata={"help": "RM score at or above which its vote is positive."})
    rm_filter_threshold: float | None = field(
        default=None,
        metadata={"help": "With an RM: keep only conversations whose minimum per-turn RM score is >= this."})

    # Parameters that control the run
    concurrency: int = field(default=8, metadata={"help": "Seeds grown at once."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N seeds of the input."})
    input_format: str | None = field(default=None, metadata={"help": "Input format (default: detected)."})
    input_on_error: str = field(
        default="skip", metadata={"help": "Invalid input rows: skip (counted) or fail.", "choices": ["skip", "fail"]})

    def __post_init__(self) -> None:
        check_run_fields(self)
        if self.reviewers < 1:
            raise ConfigError(f"reviewers: expected at least 1, got {self.reviewers}")
        if self.rounds < 1:
            raise ConfigError(f"rounds: expected at least 1, got {self.rounds}")
        if self.max_words < 1:
            raise ConfigError(f"max_words: expected at least 1, got {self.max_words}")
        if self.max_reasks < 0:
            raise ConfigError(f"max_reasks: expected 0 or more, got {self.max_reasks}")
        if self.direction not in (CHAIRMAN_DECIDES, MAJORITY_VOTE):
            raise ConfigError(f"direction: expected {CHAIRMAN_DECIDES} or {MAJORITY_VOTE}, got {self.direction!r}")
        if self.reviewer_panel not in (DIVERSE, IDENTICAL):
            raise ConfigError(f"reviewer_panel: expected {DIVERSE} or {IDENTICAL}, got {self.reviewer_panel!r}")
        if not self.reviewer_personas or not set(self.reviewer_personas) <= set(REVIEWER_PERSONAS):
            raise ConfigError(f"reviewer_personas: expected a non-empty list of {', '.join(REVIEWER_PERSONAS)}, "
                              f"got {self.reviewer_personas!r}")
        if not self.reviewer_temperatures or min(self.reviewer_temperatures) < 0:
            raise ConfigError(f"reviewer_temperatures: expected a non-empty list of temperatures >= 0, "
                              f"got {self.reviewer_temperatures!r}")
        check_backend_roles(self.backends, ("default", "candidate", "reviewer", "chairman"), ("reviewer_",))
        for role in ("candidate", "chairman"):
            if role not in self.backends and "default" not in self.backends:
                raise ConfigError(f"backends: no '{role}' entry and no 'default' entry")
        if self.review:
            for i in range(1, self.reviewers + 1):
                if not {f"reviewer_{i}", "reviewer", "default"} & set(self.backends):
                    raise ConfigError(f"backends: no 'reviewer_{i}', 'reviewer' or 'default' entry")
