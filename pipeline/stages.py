"""The stages of `turnwise run`: each reads the previous stages' outputs in the run directory and writes its own.

Every stage function takes a `StageContext` and returns a `StageOutcome`. Within a stage, work already on disk
is reused: the MUSIC, best-of-N, judge and generate runners resume item by item from their JSONL sinks, and
rm_train skips an RM it finished and resumes the other from its newest complete checkpoint.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chat.compute_thread import run_compute
from chat.config import build_config, load_yaml
from chat.errors import ConfigError, TurnwiseError
from chat.runner import FilteredRunResult, RunSummary
from chat.stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from pipeline.config import PipelineConfig

logger = logging.getLogger(__name__)

#: The two RMs of rm_train (docs/methods.md, "The MUSIC experiment end to end"): the baseline on D (the original
#: pairs of the mix's training split) and the MUSIC RM on D_aug = D + MUSIC pairs; same recipe, seed and steps.
BASELINE_RM, MUSIC_RM = "baseline", "music"
RM_NAMES = (BASELINE_RM, MUSIC_RM)
#: Held-out sets rm_eval scores both RMs on, written by mix from its eval split: D's multi-turn pairs (in
#: Skywork these contrast the last turn only), the held-out MUSIC pairs, and D's single-turn pairs.
EVAL_SETS = ("multi_turn", "music", "single_turn")
#: MUSIC pairs per original pair when `mix.ratio` is not given (paper: ~31k MUSIC on ~73k original pairs).
DEFAULT_MIX_RATIO = 0.42


@dataclass
class StageContext:
    """What a stage needs: the config, the run directory and whether to draw progress bars.

    rm_name: the RM `reward_model` names (the MUSIC RM, which the judge and generate stages use; rm_train sets
    it per RM it trains).
    """

    config: PipelineConfig
    progress: bool = True
    rm_name: str = MUSIC_RM

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def section(self, stage: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """A stage section, rejecting keys the stage does not know."""
        section = self.config.sections[stage]
        unknown = sorted(set(section) - set(allowed))
        if unknown:
            raise ConfigError(f"{self.config.source}: {stage}: unknown key(s) {', '.join(unknown)} "
                              f"(known: {', '.join(allowed)})")
        return section

    def value(self, stage: str, key: str, default: Any, kind: type) -> Any:
        """An optional scalar of a stage section, converted to `kind` (a clear error names the key)."""
        value = self.config.sections[stage].get(key, default)
        if value is None or isinstance(value, kind):
            return value
        try:
            if kind is bool or isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            return kind(value)
        except ValueError:
            raise ConfigError(f"{self.config.source}: {stage}.{key}: expected {kind.__name__}, got {value!r}") from None

    def input_path(self, stage: str, key: str) -> str:
        """A required input file named in a stage section; local paths must exist (hub ids pass through)."""
        value = self.config.sections[stage].get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.config.source}: {stage}.{key}: expected a file path or hub dataset id")
        looks_local = value.startswith((".", "/")) or Path(value).suffix in (".jsonl", ".json", ".gz", ".parquet",
                                                                              ".txt")
        if looks_local and not Path(value).exists():
            raise ConfigError(f"{self.config.source}: {stage}.{key}: {value}: no such file")
        return value

    def options(self, stage: str, cls: type, key: str = "config", **fixed: Any) -> Any:
        """`<stage>.<key>` built into the stage's dataclass config, with run-directory paths in `fixed`."""
        return self.build(cls, {**self.config.stage_options(stage, key), **fixed}, f"{stage}.{key}")

    def build(self, cls: type, values: dict[str, Any], where: str) -> Any:
        """`cls(**values)` with every error (unknown key, bad value) naming the config file and section."""
        source = f"{self.config.source}: {where}"
        try:
            return build_config(cls, values, source=source)
        except ConfigError as exc:
            raise exc if str(exc).startswith(source) else ConfigError(f"{source}: {exc}") from None

    # Paths every later stage reads.
    @property
    def music_pairs(self) -> Path:
        return self.stage_dir("augment") / "pairs.jsonl"

    @property
    def mix_prefix(self) -> Path:
        return self.stage_dir("mix") / "data"

    @property
    def train_split(self) -> Path:
        return Path(f"{self.mix_prefix}.train.jsonl")

    @property
    def eval_split(self) -> Path:
        return Path(f"{self.mix_prefix}.eval.jsonl")

    @property
    def baseline_train_split(self) -> Path:
        """D: the original pairs of the training split (the baseline RM's data)."""
        return Path(f"{self.mix_prefix}.train.original.jsonl")

    def train_data(self, rm_name: str) -> Path:
        return self.baseline_train_split if rm_name == BASELINE_RM else self.train_split

    def eval_set(self, name: str) -> Path:
        return Path(f"{self.mix_prefix}.eval.{name}.jsonl")

    def rm_dir(self, rm_name: str) -> Path:
        return self.stage_dir("rm_train") / rm_name

    @property
    def reward_model(self) -> Path:
        return self.rm_dir(self.rm_name)


@dataclass
class StageOutcome:
    """What a stage did. `complete` False means it must run again (failed items, interrupted)."""

    outputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    interrupted: bool = False
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "counts": self.counts, "usage": self.usage, "metrics": self.metrics}


# ----------------------------------------------------------------------------- helpers

def usage_of(*summaries: RunSummary) -> dict[str, int]:
    """LLM calls, cache hits and tokens of runner summaries, added up."""
    total = {"llm_calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for summary in summaries:
        usage = (summary.usage or {}).get("total", {})
        total["llm_calls"] += int(usage.get("calls", 0))
        total["cache_hits"] += int(usage.get("cache_hits", 0))
        total["prompt_tokens"] += int(usage.get("prompt_tokens", 0))
        total["completion_tokens"] += int(usage.get("completion_tokens", 0))
    return total


def check_summary(outcome: StageOutcome, summary: RunSummary, what: str) -> StageOutcome:
    """Mark the outcome incomplete when the runner left items failed or was interrupted."""
    if summary.interrupted:
        outcome.complete, outcome.interrupted = False, True
        outcome.problem = f"{what}: interrupted with {summary.pending} item(s) pending"
    elif summary.errors or summary.pending:
        outcome.complete = False
        outcome.problem = (f"{what}: {summary.errors} item(s) failed, {summary.pending} pending "
                           f"(see {summary.output}.errors.jsonl); rerun to retry them")
    return outcome


def filtered_counts(result: FilteredRunResult, unit: str = "seeds") -> dict[str, Any]:
    """Kept/dropped counts of a generator run; `unit` names its input items (seeds, or SeDi's iterations)."""
    summary = result.summary
    return {"inputs": summary.total, "unit": unit, "kept_total": result.kept_total, "kept_this_run": result.kept,
            "dropped_this_run": result.dropped, "carried_over": summary.skipped_existing}


# ----------------------------------------------------------------------------- stages

def run_augment(ctx: StageContext) -> StageOutcome:
    """MUSIC pairs from the seed preference pairs (docs/methods.md, MUSIC steps 1-6)."""
    from augment.config import MusicConfig
    from augment.run import run_music

    ctx.section("augment", ("seeds", "config"))
    seeds = ctx.input_path("augment", "seeds")
    config = ctx.options("augment", MusicConfig)
    output = ctx.music_pairs
    output.parent.mkdir(parents=True, exist_ok=True)
    result = run_music(seeds, output, config, progress=ctx.progress)
    outcome = StageOutcome(outputs={"pairs": str(output)}, counts=filtered_counts(result),
                           usage=usage_of(result.summary))
    return check_summary(outcome, result.summary, "augment")


def mix_ratio(ctx: StageContext) -> float | None:
    """`mix.ratio` (default DEFAULT_MIX_RATIO); None, i.e. every MUSIC pair, when `ratio: null` or `count` is set."""
    section = ctx.config.sections["mix"]
    if section.get("count") is not None:
        if section.get("ratio") is not None:
            raise ConfigError(f"{ctx.config.source}: mix: give either ratio or count, not both")
        return None
    return ctx.value("mix", "ratio", DEFAULT_MIX_RATIO, float)


def user_turns(row: dict[str, Any]) -> int:
    return sum(message.get("role") == "user" for message in row.get("chosen") or [])


def eval_set_of(row: dict[str, Any]) -> str:
    """Which EVAL_SETS entry a held-out row belongs to (by `meta.origin` and its number of user turns)."""
    if (row.get("meta") or {}).get("origin") == "music":
        return "music"
    return "multi_turn" if user_turns(row) > 1 else "single_turn"


def split_by_kind(ctx: StageContext) -> dict[str, int]:
    """D's training pairs for the baseline, and the eval split cut into EVAL_SETS; returns their sizes."""
    from chat.formats import write_jsonl

    def rows(path: Path) -> list[dict[str, Any]]:
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    train = [row for row in rows(ctx.train_split) if (row.get("meta") or {}).get("origin") != "music"]
    write_jsonl(train, ctx.baseline_train_split)
    held_out = rows(ctx.eval_split)
    sizes = {"baseline_train": len(train)}
    for name in EVAL_SETS:
        chosen = [row for row in held_out if eval_set_of(row) == name]
        write_jsonl(chosen, ctx.eval_set(name))
        sizes[f"eval_{name}"] = len(chosen)
    return sizes


def run_mix(ctx: StageContext) -> StageOutcome:
    """D_aug = D + D_MUSIC with a train/eval split (docs/methods.md, MUSIC step 7); D's part of the training split
    for the baseline RM, and the eval split cut into the held-out sets rm_eval scores."""
    from augment.mix import DEFAULT_EVAL_FRACTION, mix_datasets

    section = ctx.section("mix", ("original", "original_format", "ratio", "count", "eval_fraction", "seed",
                                  "on_error"))
    if section.get("on_error", "fail") not in ("fail", "skip"):
        raise ConfigError(f"{ctx.config.source}: mix.on_error: expected fail or skip")
    original = ctx.input_path("mix", "original") if "original" in section else ctx.input_path("augment", "seeds")
    ctx.stage_dir("mix").mkdir(parents=True, exist_ok=True)
    result = mix_datasets(original, ctx.music_pairs, ctx.mix_prefix, ratio=mix_ratio(ctx),
                          count=ctx.value("mix", "count", None, int),
                          eval_fraction=ctx.value("mix", "eval_fraction", DEFAULT_EVAL_FRACTION, float),
                          seed=ctx.value("mix", "seed", 0, int),
                          original_format=ctx.value("mix", "original_format", None, str),
                          on_error=ctx.value("mix", "on_error", "fail", str))
    counts = result.to_dict()
    outputs = {"train": counts.pop("train_path"), "eval": counts.pop("eval_path"),
               "baseline_train": str(ctx.baseline_train_split)}
    counts.update(split_by_kind(ctx))
    outputs.update({f"eval_{name}": str(ctx.eval_set(name)) for name in EVAL_SETS})
    return StageOutcome(outputs=outputs, counts=counts)


def rm_recipe(ctx: StageContext) -> dict[str, Any]:
    """The RM recipe of the rm_train stage: a configs/rm file and/or a mapping, then `overrides` (both RMs)."""
    section = ctx.section("rm_train", ("config", "overrides", "accelerate_config"))
    base = section.get("config") or {}
    if isinstance(base, str):
        base = load_yaml(base)
    if not isinstance(base, dict):
        raise ConfigError(f"{ctx.config.source}: rm_train.config: expected a configs/rm YAML path or a mapping")
    overrides = section.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{ctx.config.source}: rm_train.overrides: expected a mapping")
    return {**base, **overrides}


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def shared_max_steps(ctx: StageContext, recipe: dict[str, Any]) -> tuple[int, str]:
    """(optimizer steps, how they were set) for both RMs. Same steps for D and the larger D_aug: the recipe's
    max_steps; without one, num_train_epochs over D_aug's training split on one process (the baseline then
    sees D more often); with accelerate_config the recipe must give max_steps (the step count per epoch
    depends on the number of processes)."""
    from rm.config import RMTrainConfig

    config = ctx.build(RMTrainConfig, {**recipe, "output_dir": str(ctx.rm_dir(MUSIC_RM))}, "rm_train")
    if config.max_steps and config.max_steps > 0:
        return int(config.max_steps), "max_steps of the recipe"
    if ctx.config.sections["rm_train"].get("accelerate_config"):
        raise ConfigError(f"{ctx.config.source}: rm_train: set max_steps in the RM recipe (config or overrides): "
                          "both RMs train for the same number of optimizer steps, and with accelerate_config the "
                          "steps per epoch depend on the number of processes")
    pairs = count_lines(ctx.train_split)
    per_epoch = max(math.ceil(pairs / config.train_batch_size) // config.gradient_accumulation_steps, 1)
    steps = max(math.ceil(config.num_train_epochs * per_epoch), 1)
    return steps, (f"num_train_epochs {config.num_train_epochs:g} x {per_epoch} steps over the {pairs} pairs of "
                   "D_aug's training split")


def rm_train_values(ctx: StageContext, rm_name: str = MUSIC_RM, max_steps: int | None = None) -> dict[str, Any]:
    """The RMTrainConfig values of one RM of the rm_train stage: the recipe with this RM's data and output
    paths and the shared step count (validated here, so a bad value fails before training)."""
    from rm.config import RMTrainConfig
    from rm.train import resume_argument

    output_dir = ctx.rm_dir(rm_name)
    values = {**rm_recipe(ctx), "train_data": str(ctx.train_data(rm_name)), "eval_data": str(ctx.eval_split),
              "output_dir": str(output_dir)}
    if max_steps is not None:
        values["max_steps"] = max_steps
    if any(output_dir.glob("checkpoint-*")) and resume_argument("last", output_dir):
        values["resume_from_checkpoint"] = "last"
    ctx.build(RMTrainConfig, values, "rm_train")
    return values


def train_with_accelerate(ctx: StageContext, values: dict[str, Any], accelerate_config: str) -> dict[str, Any]:
    """Multi-process training: `accelerate launch --config_file F -m app.cli rm train --config
    RUN/rm_train/<rm>.train.yaml` in a child process; returns the TrainResult it recorded in the model's metadata.

    Each rank's output also goes to RUN/rm_train/launch/<rm>/ (torchrun's `--tee`/`--log_dir`); a failed rank
    stops the stage with one line naming the rank, its exit code and its last log line, and the stage is not
    marked done (a rerun resumes from the newest complete checkpoint).
    """
    import shutil
    import subprocess
    import sys

    import yaml

    from rm.model import METADATA_FILE

    if not Path(accelerate_config).is_file():
        raise ConfigError(f"{ctx.config.source}: rm_train.accelerate_config: {accelerate_config}: no such file")
    train_yaml = ctx.stage_dir("rm_train") / f"{ctx.rm_name}.train.yaml"
    train_yaml.parent.mkdir(parents=True, exist_ok=True)
    train_yaml.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    log_dir = ctx.stage_dir("rm_train") / "launch" / ctx.rm_name
    shutil.rmtree(log_dir, ignore_errors=True)  # only this attempt's rank logs, so the failed rank's are found
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
               "--tee", "3", "--log_dir", str(log_dir), "-m", "app.cli", "rm", "train", "--config", str(train_yaml)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    tail: collections.deque[str] = collections.deque(maxlen=400)
    for line in process.stderr or ():  # shown as it comes; the end is kept for the failure summary
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    code = process.wait()
    if code != 0:
        raise TurnwiseError(f"rm_train ({ctx.rm_name}): {launch_failure(code, list(tail), log_dir)}; rerun to "
                            "resume from the last checkpoint")
    return json.loads((ctx.reward_model / METADATA_FILE).read_text(encoding="utf-8"))["result"]


#: One failed rank in torchrun's failure summary: rank, local rank, exit code (negative: killed by that signal).
RANK_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*\n\s*exitcode\s*:\s*(-?\d+)")
#: The "[rank1]: " prefix torch puts on every line a rank writes.
RANK_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")


def launch_failure(code: int, stderr_tail: list[str], log_dir: Path) -> str:
    """One line for a failed `accelerate launch`: the rank that failed first, its exit code and its last log line
    (from torchrun's failure summary and the rank logs in `log_dir`); the launcher's own exit code and last line
    when there is no summary (a launch that failed before starting ranks).

    torchrun's "first observed failure" can name a rank that only died because another one did (both are seen in
    the same poll), so the rank is chosen here: one that exited with an error before one killed by a signal, then
    the one whose log stopped first (the others go on logging their broken connection to it).
    """
    start = next((i for i, line in enumerate(stderr_tail) if line.strip() == "Failures:"), None)
    failures = RANK_FAILURE.findall("\n".join(stderr_tail[start:])) if start is not None else []
    if not failures:
        last = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "no output")
        return f"`accelerate launch` exited with code {code}: {last}"

    def rank_log(local_rank: str) -> Path | None:
        logs = sorted(log_dir.rglob(f"attempt_*/{local_rank}/stderr.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1] if logs else None

    def order(failure: tuple[str, str, str]) -> tuple[bool, float]:
        log = rank_log(failure[1])
        return int(failure[2]) < 0, log.stat().st_mtime if log else float("inf")

    rank, local_rank, exitcode = min(set(failures), key=order)
    log = rank_log(local_rank)
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log else []
    last = next((RANK_PREFIX.sub("", line).strip() for line in reversed(lines) if line.strip()), "no output")
    others = len(set(failures)) - 1
    also = f"; {others} other rank(s) failed after it" if others else ""
    return f"rank {rank} failed with exit code {exitcode}: {last} (rank logs: {log_dir}{also})"


def trained_marker(ctx: StageContext, rm_name: str) -> Path:
    """Written when one RM of the stage finished training: a resumed stage does not train it again."""
    return ctx.stage_dir("rm_train") / f"{rm_name}.result.json"


def divergence_truncation(ctx: StageContext, values: dict[str, Any]) -> dict[str, Any]:
    """Training pairs of D_aug whose divergence turn the RM's left truncation removes, counted with the RM's
    tokenizer and the trainer's encoder (pipeline/divergence.py), by origin."""
    from rm.config import RMTrainConfig
    from rm.data import load_preference_pairs
    from rm.encoding import ConversationEncoder
    from rm.train import load_tokenizer

    from pipeline.divergence import count_divergence_truncation

    from chat.runner.sink import write_json_atomic

    saved = ctx.stage_dir("rm_train") / "divergence_truncation.json"
    if saved.is_file():
        return json.loads(saved.read_text(encoding="utf-8"))
    config = ctx.build(RMTrainConfig, values, "rm_train")
    encoder = ConversationEncoder(load_tokenizer(config), config.max_length)
    counts = count_divergence_truncation(load_preference_pairs(str(ctx.train_split)), encoder)
    music = counts.get("music")
    if music is not None and music.lost:
        logger.warning("%d of %d MUSIC training pairs lost their divergence turn to the RM's max_length %s "
                       "(they teach nothing); e.g. %s", music.lost, music.pairs, config.max_length,
                       ", ".join(music.examples))
    result = {"max_length": config.max_length, **{origin: entry.to_dict() for origin, entry in counts.items()}}
    write_json_atomic(saved, result)
    return result


def music_budget_warning(ctx: StageContext, max_length: int | None) -> str | None:
    """The augment config's conversation cap vs the RM's max_length (pipeline/divergence.py)."""
    from augment.config import MusicConfig

    from pipeline.divergence import budget_warning

    return budget_warning(ctx.options("augment", MusicConfig), max_length)


def train_one(ctx: StageContext, rm_name: str, max_steps: int) -> dict[str, Any]:
    """Train (or resume) one RM of the stage; its TrainResult as a dict, recorded in `trained_marker`."""
    from rm.config import RMTrainConfig
    from rm.train import train_reward_model

    from chat.runner.sink import write_json_atomic

    marker = trained_marker(ctx, rm_name)
    if marker.is_file():
        logger.info("rm_train: the %s RM is trained already (%s)", rm_name, marker)
        return json.loads(marker.read_text(encoding="utf-8"))
    values = rm_train_values(ctx, rm_name, max_steps)
    accelerate_config = ctx.config.sections["rm_train"].get("accelerate_config")
    if accelerate_config:
        result = train_with_accelerate(dataclasses.replace(ctx, rm_name=rm_name), values, str(accelerate_config))
    else:
        result = run_compute(train_reward_model, ctx.build(RMTrainConfig, values, "rm_train")).to_dict()
    write_json_atomic(marker, result)
    return result


def run_rm_train(ctx: StageContext) -> StageOutcome:
    """Two Bradley-Terry RMs with one recipe, seed and number of optimizer steps: the baseline on D and the MUSIC
    RM on D_aug (docs/methods.md, RM steps 1-4); one after the other, each resumable."""
    recipe = rm_recipe(ctx)
    max_steps, steps_from = shared_max_steps(ctx, recipe)
    truncation = divergence_truncation(ctx, rm_train_values(ctx, MUSIC_RM, max_steps))
    warning = music_budget_warning(ctx, truncation["max_length"])
    if warning:
        logger.warning("rm_train: %s", warning)
    outcome = StageOutcome(counts={"max_steps": max_steps, "steps_from": steps_from,
                                   "divergence_truncation": truncation},
                           metrics={"budget_warning": warning})
    for rm_name in RM_NAMES:
        result = train_one(ctx, rm_name, max_steps)
        outcome.outputs[rm_name] = str(result["output_dir"])
        outcome.counts[rm_name] = {"train_pairs": result["train_pairs"], "eval_pairs": result["eval_pairs"],
                                   "global_step": result["global_step"],
                                   "truncated_sequences": result["truncation"]["train"]["truncated_sequences"],
                                   "train_tokens": result["train_tokens"]}
        outcome.metrics[rm_name] = {"eval_accuracy": result["eval_metrics"].get("eval_accuracy"),
                                    "eval_loss": result["eval_metrics"].get("eval_loss"),
                                    "train_loss": result["train_metrics"].get("train_loss"),
                                    "tokens_per_second": result["tokens_per_second"]}
    steps = {rm_name: outcome.counts[rm_name]["global_step"] for rm_name in RM_NAMES}
    if len(set(steps.values())) > 1:
        logger.warning("rm_train: the RMs stopped after different numbers of steps: %s", steps)
    return outcome


def accuracy_summary(report: Any) -> dict[str, Any]:
    summary = report.to_dict()
    return {"accuracy": summary["accuracy"], "ci95": summary["ci95"], "n": summary["n"],
            "baselines": {name: value["accuracy"] for name, value in summary["baselines"].items()}}


def rewardbench_metrics(model: Any, source: str, output_dir: Path, *, split: str, limit: int | None,
                        resamples: int, seed: int) -> tuple[dict[str, Any], dict[str, Path]]:
    """RewardBench (v1 pairs or v2 best-of-4) through rm/rewardbench.py: section scores, and for v1 the pairwise
    accuracy with its bootstrap CI."""
    import numpy as np

    from rm.evaluate import bootstrap_accuracy
    from rm.rewardbench import V1, evaluate_benchmark, read_benchmark, score_items, write_benchmark

    data = read_benchmark(source, split, limit)
    rewards = score_items(model, data.items)
    result = evaluate_benchmark(data, rewards, model=model.name)
    paths = write_benchmark(result, data, rewards, output_dir)
    metrics: dict[str, Any] = {"layout": data.layout, "n": len(data.items), "sections": result.sections}
    outcomes = np.array([o for o in result.outcomes if o is not None], dtype=float)
    if data.layout == V1 and len(outcomes):
        accuracy = bootstrap_accuracy(outcomes, resamples, seed)
        metrics.update(accuracy=accuracy.accuracy, ci95=[accuracy.ci_low, accuracy.ci_high])
    return metrics, paths


def run_rm_eval(ctx: StageContext) -> StageOutcome:
    """Both RMs on the held-out sets (D's multi-turn pairs, held-out MUSIC pairs, D's single-turn pairs) and on
    a RewardBench file when given: accuracy with bootstrap CI per set (docs/methods.md, RM steps 7-8). Runs on
    the compute thread (chat/compute_thread.py), like every stage's tensor work."""
    return run_compute(evaluate_rms, ctx)


def evaluate_rms(ctx: StageContext) -> StageOutcome:
    from rm.data import load_preference_pairs
    from rm.evaluate import evaluate_scores, write_report
    from rm.model import RewardModel

    ctx.section("rm_eval", ("bootstrap", "seed", "device", "rewardbench", "rewardbench_split", "rewardbench_limit"))
    resamples = ctx.value("rm_eval", "bootstrap", DEFAULT_RESAMPLES, int)
    seed = ctx.value("rm_eval", "seed", DEFAULT_SEED, int)
    rewardbench = ctx.input_path("rm_eval", "rewardbench") if ctx.config.sections["rm_eval"].get("rewardbench") \
        else None
    sets = {name: load_preference_pairs(str(ctx.eval_set(name)), None, None) if count_lines(ctx.eval_set(name))
            else [] for name in EVAL_SETS}
    outcome = StageOutcome(counts={name: len(pairs) for name, pairs in sets.items()})
    metrics: dict[str, dict[str, Any]] = {name: {} for name in (*EVAL_SETS, *(["rewardbench"] if rewardbench else []))}
    for rm_name in RM_NAMES:
        model = RewardModel.load(str(ctx.rm_dir(rm_name)), device=ctx.value("rm_eval", "device", None, str))
        model.name = model.name or rm_name
        for name, pairs in sets.items():
            if not pairs:
                continue
            scores = model.score_pairs(pairs)
            report = evaluate_scores(pairs, scores, model=str(ctx.rm_dir(rm_name)), data=str(ctx.eval_set(name)),
                                     resamples=resamples, seed=seed)
            paths = write_report(report, scores, pairs, ctx.stage_dir("rm_eval") / rm_name / name)
            metrics[name][rm_name] = accuracy_summary(report)
            outcome.outputs[f"{rm_name}_{name}"] = str(paths["markdown"])
            if rm_name == MUSIC_RM and name == "music":
                outcome.outputs["histogram"] = str(paths["histogram"])
        if rewardbench:
            metrics["rewardbench"][rm_name], paths = rewardbench_metrics(
                model, rewardbench, ctx.stage_dir("rm_eval") / rm_name / "rewardbench",
                split=ctx.value("rm_eval", "rewardbench_split", "train", str),
                limit=ctx.value("rm_eval", "rewardbench_limit", None, int), resamples=resamples, seed=seed)
            outcome.outputs[f"{rm_name}_rewardbench"] = str(paths["markdown"])
            outcome.counts["rewardbench"] = metrics["rewardbench"][rm_name]["n"]
    outcome.metrics = metrics
    return outcome


def run_bon(ctx: StageContext) -> StageOutcome:
    """MUSIC's multi-turn best-of-N (docs/methods.md, Multi-turn best-of-N; judge/bon.py): from each
    first prompt, per N, the MUSIC RM and the baseline RM each pick among the same N policy samples per turn,
    a simulated user continues; the judge compares the two conversations in both orders. Win rate of the
    MUSIC RM (ties and order-inconsistent verdicts 0.5) with its bootstrap CI, per N."""
    from judge.bon import BonConfig
    from judge.bon_job import run_bon_job
    from judge.config import JudgeConfig

    section = ctx.section("bon", ("prompts", "prompts_format", "backends", "config", "judge", "device"))
    if not section:
        return StageOutcome(counts={"skipped": "no bon section in the config"})
    prompts = ctx.input_path("bon", "prompts")
    backends = ctx.config.resolve_backends(section.get("backends"), "bon.backends")
    if not backends:
        raise ConfigError(f"{ctx.config.source}: bon.backends: name the policy, user_sim and judge backends")
    config = ctx.options("bon", BonConfig)
    config.validate()
    judge_config = ctx.options("bon", JudgeConfig, "judge")
    if judge_config.judge == "rm":
        raise ConfigError(f"{ctx.config.source}: bon.judge.judge: the judge of two RMs' conversations cannot be "
                          "an RM; use llm-pairwise")
    if judge_config.backends:
        raise ConfigError(f"{ctx.config.source}: bon.judge.backends: name the judge's backend under bon.backends "
                          f"(role {judge_config.backend_role!r})")
    for role in ("policy", "user_sim", judge_config.backend_role):
        if role not in backends:
            raise ConfigError(f"{ctx.config.source}: bon.backends.{role}: missing (roles: policy, user_sim, "
                              f"{judge_config.backend_role})")
    directory = ctx.stage_dir("bon")
    summary, report = asyncio.run(run_bon_job(
        config, judge_config, backends, rm_a=str(ctx.rm_dir(MUSIC_RM)), rm_b=str(ctx.rm_dir(BASELINE_RM)),
        policy_role="policy", user_role="user_sim", prompts=prompts,
        prompts_format=ctx.value("bon", "prompts_format", None, str), output_dir=directory,
        device=ctx.value("bon", "device", None, str), progress=ctx.progress))
    outcome = StageOutcome(outputs={"conversations": str(directory / "conversations.jsonl"),
                                    "markdown": str(directory / "report.md"), "json": str(directory / "report.json"),
                                    "plot": str(directory / "win_rate.png")},
                           counts={"prompts": summary.total, "turns": config.turns, "n_values": config.n_values,
                                   "requests": report.get("calls", {})},
                           usage=usage_of(summary),
                           metrics={"rm_a": MUSIC_RM, "rm_b": BASELINE_RM, "judge": report.get("judge"),
                                    "by_n": json.loads(json.dumps(report["by_n"]).replace("NaN", "null"))})
    return check_summary(outcome, summary, "bon")


def write_label_verdicts(pairs_path: Path, output: Path) -> int:
    """The dataset's own preference as a judge: chosen (shown as A) wins every pair."""
    from chat.formats import load_pairs
    from judge.verdicts import VerdictRecord, pair_category, pair_names

    pairs = load_pairs(pairs_path)
    temporary = output.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            a, b = pair_names(pair)
            record = VerdictRecord(pair.id, a, b, "A", "dataset-labels", pair_category(pair))
            handle.write(json.dumps(record.to_dict()) + "\n")
    temporary.replace(output)
    return len(pairs)


def run_judge(ctx: StageContext) -> StageOutcome:
    """LLM judge and RM judge on the held-out pairs, and their agreement with each other and with the labels."""
    from judge.config import JudgeConfig
    from judge.jobs import judge_pairs_job
    from judge.report import agree

    if not ctx.section("judge", ("config", "bootstrap", "seed", "rm_device")):
        return StageOutcome(counts={"skipped": "no judge section in the config"})
    resamples = ctx.value("judge", "bootstrap", DEFAULT_RESAMPLES, int)
    seed = ctx.value("judge", "seed", DEFAULT_SEED, int)
    directory = ctx.stage_dir("judge")
    directory.mkdir(parents=True, exist_ok=True)
    llm_config = ctx.options("judge", JudgeConfig)
    if llm_config.judge == "rm":
        raise ConfigError(f"{ctx.config.source}: judge.config.judge: the LLM judge of this stage cannot be `rm` "
                          "(the stage adds the trained RM as the second judge itself)")
    rm_config = JudgeConfig(judge="rm", rm=str(ctx.reward_model), device=ctx.value("judge", "rm_device", None, str))
    paths = {"labels": directory / "labels.jsonl", "llm": directory / "llm.jsonl", "rm": directory / "rm.jsonl"}
    pairs = write_label_verdicts(ctx.eval_split, paths["labels"])
    llm_summary = asyncio.run(judge_pairs_job(llm_config, ctx.eval_split, paths["llm"], progress=ctx.progress))
    outcome = StageOutcome(outputs={name: str(path) for name, path in paths.items()}, counts={"pairs": pairs},
                           usage=usage_of(llm_summary))
    if not check_summary(outcome, llm_summary, "judge (LLM)").complete:
        return outcome
    rm_summary = asyncio.run(judge_pairs_job(rm_config, ctx.eval_split, paths["rm"], progress=ctx.progress))
    if not check_summary(outcome, rm_summary, "judge (RM)").complete:
        return outcome
    for name, (a, b) in {"llm-vs-labels": ("labels", "llm"), "rm-vs-labels": ("labels", "rm"),
                         "llm-vs-rm": ("llm", "rm")}.items():
        report = agree(paths[a], paths[b], directory / name, resamples=resamples, seed=seed)
        outcome.outputs[name] = str(directory / name / "report.md")
        outcome.metrics[name] = {"counts": report["counts"], "agreement": report["agreement"]}
    return outcome


def pipeline_generators() -> list[Any]:
    """The registered generators the generate stage can run: those with one kept/dropped runner result
    (`FilteredRunResult`), each named by its section key (generate.registry)."""
    from generate.registry import load_generators

    return [generator for generator in load_generators() if issubclass(generator.result, FilteredRunResult)]


def generate_section(ctx: StageContext) -> tuple[dict[str, Any], list[Any]]:
    """The generate section and the generators it names, in registry order; its keys are each generator's section,
    the input keys of their input kinds, and `embeddings`."""
    generators = pipeline_generators()
    inputs = dict.fromkeys(generator.input.key for generator in generators)
    section = ctx.section("generate", (*inputs, *(generator.section for generator in generators), "embeddings"))
    named = [generator for generator in generators if generator.section in section]
    if section and not named:
        raise ConfigError(f"{ctx.config.source}: generate: name "
                          f"{' and/or '.join(generator.section for generator in generators)}")
    return section, named


def run_generate(ctx: StageContext) -> StageOutcome:
    """The registered generators the section names (Review-Instruct, SeDi-Instruct, CoEvol) with the trained RM as
    reviewer, filter or judge (docs/methods.md, each method's section)."""
    from generate.stats import stats_for_file

    section, generators = generate_section(ctx)
    if not section:
        return StageOutcome(counts={"skipped": "no generate section in the config"})
    directory = ctx.stage_dir("generate")
    directory.mkdir(parents=True, exist_ok=True)
    rm = str(ctx.reward_model)
    outcome = StageOutcome()
    summaries = []
    for generator in generators:
        name = generator.section
        inputs = ctx.input_path("generate", generator.input.key)
        options = ctx.config.stage_options("generate", name)
        config = ctx.build(generator.config, {"rm": rm, **options}, f"generate.{name}")
        output = directory / f"{name}.jsonl"
        result = generator.run(inputs, output, config, progress=ctx.progress)
        summaries.append(result.summary)
        outcome.outputs[name] = str(output)
        outcome.counts[name] = filtered_counts(result, generator.unit)
        if not check_summary(outcome, result.summary, f"generate {name}").complete:
            outcome.usage = usage_of(*summaries)
            return outcome
        if result.kept_total:
            stats = stats_for_file(output, embeddings=ctx.value("generate", "embeddings", True, bool),
                                   plots_dir=directory / "plots")
            outcome.metrics[name] = stats
    outcome.usage = usage_of(*summaries)
    return outcome


#: Stage name -> its function (the report stage lives in pipeline.report).
STAGE_FUNCTIONS: dict[str, Callable[[StageContext], StageOutcome]] = {
    "augment": run_augment, "mix": run_mix, "rm_train": run_rm_train, "rm_eval": run_rm_eval, "bon": run_bon,
    "judge": run_judge, "generate": run_generate}
