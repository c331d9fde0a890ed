"""Config of `turnwise generate sedi` (SeDi-Instruct and its Self-Instruct baseline, docs/methods.md), TRL-style."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError
from generate.run_settings import default_backends

#: Modes of `generate sedi`.
SEDI_MODES = ("sedi", "self-instruct")
#: How `generate sedi` measures similarity inside a batch.
BATCH_SIMILARITIES = ("rouge", "embedding")
#: What becomes of an instruction that fits no open batch: it waits for a later batch, or is dropped.
BATCH_OVERFLOWS = ("wait", "drop")
#: The feedback signal: the responder's own per-token loss on its response, or the RM score of the pair.
FEEDBACK_SIGNALS = ("loss", "rm")
#: Where the feedback thresholds come from: quantiles of the seed set's scores, or the absolute values.
THRESHOLD_SOURCES = ("seed_quantiles", "absolute")


@dataclass
class SediConfig:
    r"""Configuration of `turnwise generate sedi` (SeDi-Instruct and its Self-Instruct baseline, docs/methods.md).

    Parameters that control the mode:
        mode: `self-instruct` (ROUGE-L < rouge_threshold against the pool, every kept pair kept) or `sedi`
            (relaxed ROUGE-L threshold, batch-level diversity filter, RM feedback on the seed pool).
    Parameters that control generation:
        backends (roles generator, responder; `default` serves both), iterations, requests_per_iteration,
        seed_examples, machine_examples, instructions_per_call, temperature, max_tokens, seed.
    Parameters that control filtering:
        rouge_threshold, sedi_rouge_threshold, min_words, max_words, batch_size, batch_similarity,
        batch_threshold, open_batches, batch_overflow.
    Parameters that control the feedback (sedi mode):
        feedback_signal, rm, rm_device, thresholds, calibration_seeds, retire_quantile, promote_quantile,
        keep_quantile, retire_threshold, promote_threshold, keep_threshold, min_offspring.

    Open choices of the paper and the defaults taken here: the relaxed threshold is 0.85; a batch of
    `batch_size` instructions admits a new one only if its similarity to every member is below
    `batch_threshold`, up to `open_batches` batches are filled at once, an instruction that fits none waits
    for a later batch, and OUT is written batch by batch; the feedback signal is the responder's own mean
    per-token loss on its response (the training loss of that pair for the model being tuned), and the
    retire / promote / keep thresholds are quantiles of the same signal on the seed set (on a seeded sample of
    `calibration_seeds` seed tasks: quantiles need a few dozen scores, not one responder call per seed).
    """

    mode: str = field(default="sedi", metadata={"help": "sedi or self-instruct (the baseline).",
                                                "choices": list(SEDI_MODES)})
    backends: dict = field(
        default_factory=default_backends,
        metadata={"help": "Role -> backend spec: generator (writes instructions), responder (answers them); "
                          "`default` serves both."})
    iterations: int = field(default=4, metadata={"help": "Generation iterations (the feedback runs after each)."})
    requests_per_iteration: int = field(default=8, metadata={"help": "Instruction-generation calls per iteration."})
    seed_examples: int = field(default=6, metadata={"help": "Seed tasks shown in each generation prompt (paper: 6)."})
    machine_examples: int = field(
        default=2, metadata={"help": "Generated tasks shown in each prompt, once there are some (paper: 2)."})
    instructions_per_call: int = field(default=8, metadata={"help": "New instructions asked for in one call."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of generation calls."})
    response_temperature: float = field(default=0.2, metadata={"help": "Sampling temperature of response calls."})
    max_tokens: int = field(default=512, metadata={"help": "Maximum tokens per reply."})
    seed: int = field(default=0, metadata={"help": "Seed of example sampling and of every call."})

    rouge_threshold: float = field(
        default=0.7, metadata={"help": "self-instruct mode: drop an instruction whose ROUGE-L with the pool is >= this."})
    sedi_rouge_threshold: float = field(
        default=0.85, metadata={"help": "sedi mode: the relaxed ROUGE-L threshold against the pool."})
    min_words: int = field(default=3, metadata={"help": "Drop instructions shorter than this many words."})
    max_words: int = field(default=150, metadata={"help": "Drop instructions longer than this many words."})
    batch_size: int = field(default=8, metadata={"help": "sedi mode: instructions per training batch."})
    batch_similarity: str = field(
        default="rouge", metadata={"help": "sedi mode: similarity inside a batch: rouge (ROUGE-L) or embedding "
                                           "(MiniLM cosine).", "choices": list(BATCH_SIMILARITIES)})
    batch_threshold: float = field(
        default=0.5, metadata={"help": "sedi mode: an instruction joins a batch only if its similarity to every "
                                       "member is below this."})
    open_batches: int = field(default=4, metadata={"help": "sedi mode: batches filled at the same time."})
    batch_overflow: str = field(
        default="wait", metadata={"help": "sedi mode: an instruction that fits no open batch waits for a later "
                                          "batch (wait) or is dropped (drop).", "choices": list(BATCH_OVERFLOWS)})

    feedback_signal: str = field(
        default="loss", metadata={"help": "sedi mode: the feedback score of a pair: loss (the responder's mean "
                                          "negative token logprob of its response, asked with logprobs) or rm "
                                          "(the RM score; needs --rm).", "choices": list(FEEDBACK_SIGNALS)})
    rm: str | None = field(default=None, metadata={"help": "Reward model path (the rm signal; recorded as "
                                                           "rm_score with either signal)."})
    rm_device: str | None = field(default=None, metadata={"help": "Device of the RM."})
    thresholds: str = field(
        default="seed_quantiles", metadata={"help": "sedi mode: feedback thresholds as quantiles of the seed set's "
                                                    "scores (seed_quantiles) or the absolute *_threshold values.",
                                            "choices": list(THRESHOLD_SOURCES)})
    calibration_seeds: int | None = field(
        default=32, metadata={"help": "seed_quantiles: seed tasks (a seeded sample of the active ones) the responder "
                                      "answers for the thresholds; none = every seed task."})
    retire_quantile: float = field(
        default=0.25, metadata={"help": "seed_quantiles: retire a seed whose offspring's mean score is below this "
                                        "quantile of the seed scores."})
    promote_quantile: float = field(
        default=0.9, metadata={"help": "seed_quantiles: promote kept pairs scoring >= this quantile of the seed "
                                       "scores into the seed pool."})
    keep_quantile: float | None = field(
        default=None, metadata={"help": "seed_quantiles: drop pairs scoring below this quantile of the seed scores "
                                        "(none = keep all)."})
    retire_threshold: float = field(
        default=0.0, metadata={"help": "absolute: retire a seed whose offspring's mean score is below this."})
    promote_threshold: float = field(
        default=1.0, metadata={"help": "absolute: promote kept pairs scoring >= this into the seed pool."})
    keep_threshold: float | None = field(
        default=None, metadata={"help": "absolute: drop pairs scoring below this (none = keep all)."})
    min_offspring: int = field(
        default=2, metadata={"help": "sedi mode: offspring scored before a seed can be retired."})

    concurrency: int = field(default=8, metadata={"help": "Calls in flight at once."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N seed tasks."})
    input_format: str | None = field(default=None, metadata={"help": "Input format (default: detected)."})
    input_on_error: str = field(
        default="skip", metadata={"help": "Invalid input rows: skip (counted) or fail.", "choices": ["skip", "fail"]})

    def __post_init__(self) -> None:
        check_run_fields(self)
        if self.mode not in SEDI_MODES:
            raise ConfigError(f"mode: expected one of {', '.join(SEDI_MODES)}, got {self.mode!r}")
        if self.batch_similarity not in BATCH_SIMILARITIES:
            raise ConfigError(f"batch_similarity: expected one of {', '.join(BATCH_SIMILARITIES)}, "
                              f"got {self.batch_similarity!r}")
        for name in ("iterations", "requests_per_iteration", "seed_examples", "instructions_per_call", "batch_size",
                     "open_batches", "min_words"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.calibration_seeds is not None and self.calibration_seeds < 2:
            raise ConfigError(f"calibration_seeds: expected at least 2 (quantiles need scores) or none, "
                              f"got {self.calibration_seeds}")
        if self.machine_examples < 0 or self.min_offspring < 0:
            raise ConfigError("machine_examples, min_offspring: expected 0 or more")
        if self.max_words < self.min_words:
            raise ConfigError(f"max_words: expected >= min_words ({self.min_words}), got {self.max_words}")
        for name in ("rouge_threshold", "sedi_rouge_threshold", "batch_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: expected a value in (0, 1], got {getattr(self, name)}")
        for name, value, choices in (("batch_overflow", self.batch_overflow, BATCH_OVERFLOWS),
                                     ("feedback_signal", self.feedback_signal, FEEDBACK_SIGNALS),
                                     ("thresholds", self.thresholds, THRESHOLD_SOURCES)):
            if value not in choices:
                raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        for name in ("retire_quantile", "promote_quantile", "keep_quantile"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}: expected a value in [0, 1], got {value}")
        check_backend_roles(self.backends, ("default", "generator", "responder"))
        for role in ("generator", "responder"):
            if role not in self.backends and "default" not in self.backends:
                raise ConfigError(f"backends: no '{role}' entry and no 'default' entry")

    @property
    def pool_threshold(self) -> float:
        """The ROUGE-L threshold against the pool in this mode."""
        return self.rouge_threshold if self.mode == "self-instruct" else self.sedi_rouge_threshold
