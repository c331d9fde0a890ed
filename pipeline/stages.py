"""The stages of `turnwise run`: each reads the previous stages' outputs in the run directory and writes its own.

Every stage function takes a `StageContext` and returns a `StageOutcome`. Within a stage, work already on disk
is reused: the MUSIC, judge and generate runners resume item by item from their JSONL sinks, and RM training
resumes from its newest complete checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chat.config import build_config, load_yaml
from chat.errors import ConfigError, TurnwiseError
from chat.runner import FilteredRunResult, RunSummary
from pipeline.config import PipelineConfig

#: Name of the RM directory inside the rm_train stage directory.
RM_DIR = "model"


@dataclass
class StageContext:
    """What a stage needs: the config, the run directory and whether to draw progress bars."""

    config: PipelineConfig
    progress: bool = True

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
    def reward_model(self) -> Path:
        return self.stage_dir("rm_train") / RM_DIR


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
    """MUSIC pairs from the seed preference pairs (PAPERS.md section 1)."""
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


def run_mix(ctx: StageContext) -> StageOutcome:
    """D_aug = D + D_MUSIC with a train/eval split (PAPERS.md section 1)."""
    from augment.mix import mix_datasets

    section = ctx.section("mix", ("original", "original_format", "ratio", "count", "eval_fraction", "seed",
                                  "on_error"))
    if section.get("on_error", "fail") not in ("fail", "skip"):
        raise ConfigError(f"{ctx.config.source}: mix.on_error: expected fail or skip")
    original = ctx.input_path("mix", "original") if "original" in section else ctx.input_path("augment", "seeds")
    ctx.stage_dir("mix").mkdir(parents=True, exist_ok=True)
    result = mix_datasets(original, ctx.music_pairs, ctx.mix_prefix, ratio=ctx.value("mix", "ratio", None, float),
                          count=ctx.value("mix", "count", None, int),
                          eval_fraction=ctx.value("mix", "eval_fraction", 0.05, float),
                          seed=ctx.value("mix", "seed", 0, int),
                          original_format=ctx.value("mix", "original_format", None, str),
                          on_error=ctx.value("mix", "on_error", "fail", str))
    counts = result.to_dict()
    outputs = {"train": counts.pop("train_path"), "eval": counts.pop("eval_path")}
    return StageOutcome(outputs=outputs, counts=counts)


def rm_train_values(ctx: StageContext) -> dict[str, Any]:
    """The RMTrainConfig values of the rm_train stage: a configs/rm file and/or a mapping, then `overrides`,
    with the data and output paths of this run (validated here, so a bad value fails before training)."""
    from rm.config import RMTrainConfig
    from rm.train import resume_argument

    section = ctx.section("rm_train", ("config", "overrides", "accelerate_config"))
    base = section.get("config") or {}
    if isinstance(base, str):
        base = load_yaml(base)
    if not isinstance(base, dict):
        raise ConfigError(f"{ctx.config.source}: rm_train.config: expected a configs/rm YAML path or a mapping")
    overrides = section.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{ctx.config.source}: rm_train.overrides: expected a mapping")
    output_dir = ctx.reward_model
    values = {**base, **overrides, "train_data": str(ctx.train_split), "eval_data": str(ctx.eval_split),
              "output_dir": str(output_dir)}
    if any(output_dir.glob("checkpoint-*")) and resume_argument("last", output_dir):
        values["resume_from_checkpoint"] = "last"
    ctx.build(RMTrainConfig, values, "rm_train")
    return values


def train_with_accelerate(ctx: StageContext, values: dict[str, Any], accelerate_config: str) -> dict[str, Any]:
    """Multi-GPU training: `accelerate launch --config_file F -m chat.cli rm train --config RUN/rm_train/train.yaml`
    in a child process; returns the TrainResult it recorded in the model's metadata."""
    import subprocess
    import sys

    import yaml

    from rm.model import METADATA_FILE

    if not Path(accelerate_config).is_file():
        raise ConfigError(f"{ctx.config.source}: rm_train.accelerate_config: {accelerate_config}: no such file")
    train_yaml = ctx.stage_dir("rm_train") / "train.yaml"
    train_yaml.parent.mkdir(parents=True, exist_ok=True)
    train_yaml.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
               "-m", "chat.cli", "rm", "train", "--config", str(train_yaml)]
    if subprocess.run(command).returncode != 0:
        raise TurnwiseError(f"rm_train: `{' '.join(command)}` failed (its output is above); rerun to resume from "
                            "the last checkpoint")
    return json.loads((ctx.reward_model / METADATA_FILE).read_text(encoding="utf-8"))["result"]


def run_rm_train(ctx: StageContext) -> StageOutcome:
    """Bradley-Terry RM on the mixed training split (PAPERS.md section 1, "RM training in the paper")."""
    from rm.config import RMTrainConfig
    from rm.train import train_reward_model

    values = rm_train_values(ctx)
    accelerate_config = ctx.config.sections["rm_train"].get("accelerate_config")
    if accelerate_config:
        result = train_with_accelerate(ctx, values, str(accelerate_config))
    else:
        result = train_reward_model(ctx.build(RMTrainConfig, values, "rm_train"))
        result = result.to_dict()
    counts = {"train_pairs": result["train_pairs"], "eval_pairs": result["eval_pairs"],
              "global_step": result["global_step"],
              "truncated_sequences": result["truncation"]["train"]["truncated_sequences"],
              "train_tokens": result["train_tokens"]}
    metrics = {"eval_accuracy": result["eval_metrics"].get("eval_accuracy"),
               "eval_loss": result["eval_metrics"].get("eval_loss"),
               "train_loss": result["train_metrics"].get("train_loss"),
               "tokens_per_second": result["tokens_per_second"]}
    return StageOutcome(outputs={"model": str(result["output_dir"])}, counts=counts, metrics=metrics)


def run_rm_eval(ctx: StageContext) -> StageOutcome:
    """Pairwise accuracy of the trained RM on the held-out split, with length baselines and groups (issue 3)."""
    from rm.data import load_preference_pairs
    from rm.evaluate import evaluate_scores, write_report
    from rm.model import RewardModel

    ctx.section("rm_eval", ("bootstrap", "seed", "device"))
    resamples, seed = ctx.value("rm_eval", "bootstrap", 1000, int), ctx.value("rm_eval", "seed", 0, int)
    pairs = load_preference_pairs(str(ctx.eval_split), None, None)
    model = RewardModel.load(str(ctx.reward_model), device=ctx.value("rm_eval", "device", None, str))
    scores = model.score_pairs(pairs)
    report = evaluate_scores(pairs, scores, model=str(ctx.reward_model), data=str(ctx.eval_split),
                             resamples=resamples, seed=seed)
    paths = write_report(report, scores, pairs, ctx.stage_dir("rm_eval"))
    summary = report.to_dict()
    metrics = {"accuracy": summary["accuracy"], "ci95": summary["ci95"], "n": summary["n"],
               "baselines": {name: value["accuracy"] for name, value in summary["baselines"].items()},
               "groups": {key: {value: acc["accuracy"] for value, acc in table.items()}
                          for key, table in summary["groups"].items()}}
    return StageOutcome(outputs={name: str(path) for name, path in paths.items()}, counts={"pairs": len(pairs)},
                        metrics=metrics)


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

    ctx.section("judge", ("config", "bootstrap", "seed", "rm_device"))
    resamples, seed = ctx.value("judge", "bootstrap", 1000, int), ctx.value("judge", "seed", 0, int)
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


def run_generate(ctx: StageContext) -> StageOutcome:
    """Review-Instruct and SeDi-Instruct with the trained RM as reviewer and filter (PAPERS.md sections 2-3)."""
    from generate.config import ReviewInstructConfig, SediConfig
    from generate.review_run import run_review_instruct
    from generate.sedi import run_sedi
    from generate.stats import stats_for_file

    section = ctx.section("generate", ("seeds", "review_instruct", "sedi", "embeddings"))
    if "review_instruct" not in section and "sedi" not in section:
        raise ConfigError(f"{ctx.config.source}: generate: name review_instruct and/or sedi")
    seeds = ctx.input_path("generate", "seeds")
    directory = ctx.stage_dir("generate")
    directory.mkdir(parents=True, exist_ok=True)
    rm = str(ctx.reward_model)
    jobs: dict[str, tuple[type, Callable[..., FilteredRunResult]]] = {
        "review_instruct": (ReviewInstructConfig, run_review_instruct), "sedi": (SediConfig, run_sedi)}
    outcome = StageOutcome()
    summaries = []
    for name, (cls, run_job) in jobs.items():
        if name not in section:
            continue
        options = ctx.config.stage_options("generate", name)
        config = ctx.build(cls, {"rm": rm, **options}, f"generate.{name}")
        output = directory / f"{name}.jsonl"
        result = run_job(seeds, output, config, progress=ctx.progress)
        summaries.append(result.summary)
        outcome.outputs[name] = str(output)
        outcome.counts[name] = filtered_counts(result, "iterations" if name == "sedi" else "seeds")
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
    "augment": run_augment, "mix": run_mix, "rm_train": run_rm_train, "rm_eval": run_rm_eval,
    "judge": run_judge, "generate": run_generate}
