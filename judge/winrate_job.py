"""`judge winrate`: AlpacaEval-style win rate of model outputs against reference outputs, judged or from annotations.

Inputs are AlpacaEval's layouts (model outputs: a JSON list of {instruction, output, generator,
dataset?}; annotations: {instruction, output_1, generator_1, output_2, generator_2, preference}) or
any conversation format (canonical conversation JSONL for multi-turn dialogues). output_1 is always
the reference (baseline) and output_2 the model, as in AlpacaEval; judging shows the pair in both
orders (chat/pairwise.py `combine_orders`; logprob verdicts average both orders' probabilities).
The numbers themselves come from judge/winrate.py.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chat.backends import UsageLedger, aclose_backends
from chat.conversation import Conversation, ValidationError
from chat.errors import ConfigError, InputError
from chat.formats import load_conversations
from chat.formats.fields import json_type
from chat.formats.sources import open_source
from chat.runner import RunSummary, run_jobs
from chat.stats import DEFAULT_SEED
from judge.base import Judge, Verdict, judged_reply_length, through_turn
from judge.config import JudgeConfig
from judge.report import json_safe
from judge.winrate import DEFAULT_LC_RESAMPLES, head_to_head, length_controlled

#: Leaderboard columns, in AlpacaEval's order (its leaderboard CSVs), plus what turnwise adds after them.
LEADERBOARD_COLUMNS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
                       "discrete_win_rate", "mode", "avg_length", "length_controlled_winrate", "lc_standard_error",
                       "n_unparseable", "annotator", "baseline")

#: Verdict of a pair shown as (reference = A, model = B) -> AlpacaEval preference.
_PREFERENCE = {"A": 1.0, "B": 2.0, "tie": 1.5}


@dataclass
class Annotation:
    """One AlpacaEval annotation: output_1 / generator_1 = the baseline, output_2 / generator_2 = the model."""

    instruction: str
    output_1: str
    generator_1: str
    output_2: str
    generator_2: str
    preference: float | None
    dataset: str = ""
    annotator: str = ""
    id: str = ""
    len_1: int | None = None
    len_2: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def length_1(self) -> int:
        return self.len_1 if self.len_1 is not None else len(self.output_1)

    @property
    def length_2(self) -> int:
        return self.len_2 if self.len_2 is not None else len(self.output_2)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "instruction": self.instruction, "output_1": self.output_1,
                "generator_1": self.generator_1, "output_2": self.output_2, "generator_2": self.generator_2,
                "dataset": self.dataset, "annotator": self.annotator, "preference": self.preference,
                "len_1": self.length_1, "len_2": self.length_2, "detail": self.detail}


# ----------------------------------------------------------------------------- reading

def _text_field(row: dict[str, Any], key: str, default: str | None = None) -> str:
    value = row.get(key, default)
    if value is None:
        if default is not None:
            return default
        raise ValidationError(key, "missing field")
    if not isinstance(value, str):
        raise ValidationError(key, f"expected a string, got {json_type(value)}")
    return value


def _preference(row: dict[str, Any]) -> float | None:
    if "preference" not in row:
        raise ValidationError("preference", "missing field")
    value = row["preference"]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("preference", f"expected a number in [1, 2] (or null), got {value!r}")
    value = float(value)
    if value != 0.0 and not 1.0 <= value <= 2.0:
        raise ValidationError("preference", f"expected a number in [1, 2] (0 = draw) or null, got {value!r}")
    return value


def read_annotations(path: str | Path, model: str | None = None) -> list[Annotation]:
    """AlpacaEval annotations (JSON list or JSONL, .gz fine); the first bad row is an InputError (PATH:ROW: field).

    `model` names the evaluated generator: rows where it is generator_1 are flipped (preference 3 - p)
    so that it is always output_2; without it output_2 is the model, as AlpacaEval writes them.
    """
    source = open_source(path)
    annotations = []
    for row in source.rows():
        if row.error is not None:
            raise InputError(source.info.name, row.line, *row.error)
        try:
            value = row.value
            if not isinstance(value, dict):
                raise ValidationError("row", f"expected a JSON object, got {json_type(value)}")
            annotation = Annotation(
                instruction=_text_field(value, "instruction"), output_1=_text_field(value, "output_1"),
                generator_1=_text_field(value, "generator_1", ""), output_2=_text_field(value, "output_2"),
                generator_2=_text_field(value, "generator_2", ""), preference=_preference(value),
                dataset=_text_field(value, "dataset", ""), annotator=_text_field(value, "annotator", ""),
                id=str(value.get("id") or ""), detail=value.get("detail") if isinstance(value.get("detail"), dict) else {},
                len_1=value.get("len_1") if isinstance(value.get("len_1"), int) else None,
                len_2=value.get("len_2") if isinstance(value.get("len_2"), int) else None)
        except ValidationError as exc:
            where = f"{row.prefix}.{exc.field}" if row.prefix else exc.field
            raise InputError(source.info.name, row.line, where, exc.reason) from None
        if model is not None and annotation.generator_1 == model and annotation.generator_2 != model:
            annotation = _flipped(annotation)
        annotations.append(annotation)
    if not annotations:
        raise InputError(source.info.name, 1, "file", "empty file: no annotations")
    generators = {a.generator_2 for a in annotations}
    if model is not None and generators != {model}:
        raise InputError(source.info.name, None, "generator_2",
                         f"--model {model!r} is not a side of every row (models found: {', '.join(sorted(generators))})")
    return annotations


def _flipped(a: Annotation) -> Annotation:
    return Annotation(a.instruction, a.output_2, a.generator_2, a.output_1, a.generator_1,
                      None if a.preference is None else (1.5 if a.preference == 0 else 3.0 - a.preference),
                      a.dataset, a.annotator, a.id, a.len_2, a.len_1, a.detail)


def _user_turns(conversation: Conversation) -> tuple[str, ...]:
    return tuple(m.content for m in conversation.messages if m.role == "user")


def match_outputs(model: Sequence[Conversation], reference: Sequence[Conversation],
                  reference_name: str) -> list[tuple[Conversation, Conversation]]:
    """(reference, model) pairs: matched on the conversation id when every model id is a reference id,
    otherwise on the user turns (AlpacaEval matches on the instruction). A model item without a
    reference is an InputError naming it."""
    by_id = {c.id: c for c in reference}
    if all(c.id in by_id for c in model):
        return [(by_id[c.id], c) for c in model]
    by_turns: dict[tuple[str, ...], Conversation] = {}
    for conversation in reference:
        by_turns.setdefault(_user_turns(conversation), conversation)
    pairs = []
    for conversation in model:
        found = by_turns.get(_user_turns(conversation))
        if found is None:
            raise InputError(reference_name, None, "instruction",
                             f"no reference output for model item {conversation.id!r} (matched on id, then on the "
                             f"user turns: {_user_turns(conversation)[0][:60]!r})")
        pairs.append((found, conversation))
    return pairs


def generator_of(conversation: Conversation, fallback: str) -> str:
    return str(conversation.meta.get("generator") or conversation.meta.get("model_id") or fallback)


def read_difficulty(path: str | Path, annotations: Sequence[Annotation]) -> list[float]:
    """Instruction difficulty per annotation from a CSV (AlpacaEval's instruction_difficulty.csv: first
    column the instruction's index in the evaluation set or the instruction text, then the value) or a
    JSON object instruction -> value. An instruction without a value is an InputError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), None, "file", exc.strerror or str(exc)) from None
    values: dict[str, float] = {}
    if path.suffix == ".json":
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InputError(str(path), None, "file", f"not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError(str(path), None, "file", "expected a JSON object instruction -> difficulty")
        values = {str(k): v for k, v in loaded.items()}
    else:
        rows = list(csv.reader(text.splitlines()))
        for line, row in enumerate(rows[1:], start=2):
            if len(row) < 2:
                raise InputError(str(path), line, "row", "expected two columns: index or instruction, difficulty")
            values[row[0]] = row[-1]
    difficulties = []
    for index, annotation in enumerate(annotations):
        raw = values.get(annotation.instruction, values.get(str(index)))
        try:
            difficulties.append(float(raw))
        except (TypeError, ValueError):
            raise InputError(str(path), None, "instruction_difficulty",
                             f"no number for row {index} ({annotation.instruction[:60]!r})") from None
    return difficulties


# ----------------------------------------------------------------------------- judging

def preference_of(verdict: Verdict) -> float | None:
    """A verdict on (reference shown as A, model as B) -> AlpacaEval preference: the averaged logprob
    distribution as 1 + P(model) + P(tie) / 2 when the judge recorded one, else 1 / 1.5 / 2; None when unparseable."""
    probabilities = verdict.detail.get("probabilities")
    mean = probabilities.get("mean") if isinstance(probabilities, dict) else None
    if verdict.winner is None:
        return None
    if isinstance(mean, dict):
        return 1.0 + float(mean["B"]) + 0.5 * float(mean["tie"])
    return _PREFERENCE[verdict.winner]


def annotation_from_verdict(reference: Conversation, model: Conversation, verdict: Verdict, judge_name: str,
                            turn: int | None, reference_generator: str, model_generator: str) -> Annotation:
    """The AlpacaEval annotation of one judged pair; multi-turn outputs are the judged assistant replies."""
    def shown(conversation: Conversation) -> str:
        if turn is not None:
            return through_turn(conversation, turn).messages[-1].content
        return "\n\n".join(m.content for m in conversation.messages if m.role == "assistant")

    return Annotation(
        instruction=next(m.content for m in model.messages if m.role == "user"), output_1=shown(reference),
        generator_1=reference_generator, output_2=shown(model), generator_2=model_generator,
        preference=preference_of(verdict), dataset=str(model.meta.get("dataset") or model.meta.get("category") or ""),
        annotator=judge_name, id=model.id, len_1=judged_reply_length(reference, turn),
        len_2=judged_reply_length(model, turn),
        detail={"winner": verdict.winner, "turn": turn, **verdict.detail})


async def judge_outputs_job(config: JudgeConfig, model_path: str | Path, reference_path: str | Path,
                            annotations_path: Path, *, progress: bool = True, judge: Judge | None = None,
                            cache_path: Path | None = None, overwrite: bool = False) -> RunSummary:
    """Judge every model output against its reference output; one annotation a line in `annotations_path`
    (resumable: rerunning skips the ids already there; refused when they were made with other settings,
    unless `overwrite`, which starts it over)."""
    from chat.runner import claim_output
    from judge.jobs import build_judge, judge_settings

    model_items = load_conversations(model_path, config.format)
    reference_items = load_conversations(reference_path, config.format)
    pairs = match_outputs(model_items, reference_items, str(reference_path))
    ledger = UsageLedger()
    backends: dict[str, Any] = {}
    if judge is None:
        judge, backends = build_judge(config, ledger, cache_path)
    counters: Counter = Counter()

    async def worker(pair: tuple[Conversation, Conversation]) -> dict[str, Any]:
        reference, model = pair
        verdict = await judge.judge_pair(reference, model, config.turn, model.meta.get("reference"))
        counters[f"winner_{verdict.winner}" if verdict.winner else "unparseable"] += 1
        annotation = annotation_from_verdict(reference, model, verdict, judge.name, config.turn,
                                             generator_of(reference, Path(str(reference_path)).stem),
                                             generator_of(model, Path(str(model_path)).stem))
        row = annotation.to_dict()
        row["judge"] = judge.name
        return row

    try:
        claim_output(annotations_path, judge_settings(config, judge), overwrite=overwrite)
        return await run_jobs(pairs, worker, annotations_path, item_id=lambda pair: pair[1].id,
                              concurrency=config.concurrency, ledger=ledger, counters=counters,
                              description=f"judge winrate ({judge.name})", progress=progress, limit=config.limit,
                              input_name=str(model_path))
    finally:
        await aclose_backends(backends)


# ----------------------------------------------------------------------------- report

def leaderboard_row(annotations: Sequence[Annotation], *, mode: str = "community",
                    difficulty: Sequence[float] | None = None, resamples: int = DEFAULT_LC_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> tuple[dict[str, Any], dict[str, Any]]:
    """(leaderboard row in LEADERBOARD_COLUMNS, the LC fit as a dict) of one model's annotations."""
    preferences = [a.preference for a in annotations]
    row: dict[str, Any] = head_to_head(preferences)
    fit = length_controlled(preferences, [a.length_1 for a in annotations], [a.length_2 for a in annotations],
                            difficulty, resamples=resamples, seed=seed)
    row.update({"mode": mode, "avg_length": int(round(float(np.mean([a.length_2 for a in annotations])))),
                "length_controlled_winrate": fit.length_controlled_winrate,
                "lc_standard_error": fit.lc_standard_error,
                "n_unparseable": sum(1 for p in preferences if p is None),
                "annotator": "/".join(sorted({a.annotator for a in annotations if a.annotator})),
                "baseline": "/".join(sorted({a.generator_1 for a in annotations if a.generator_1}))})
    return {key: row[key] for key in LEADERBOARD_COLUMNS}, fit.to_dict()


def length_buckets(annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    """Win rate by the model's length minus the baseline's (characters), in five fixed buckets."""
    edges = [(-math.inf, -500), (-500, -100), (-100, 100), (100, 500), (500, math.inf)]
    names = ["< -500", "-500..-100", "-100..100", "100..500", "> 500"]
    rows = []
    for name, (low, high) in zip(names, edges):
        group = [a.preference - 1.0 for a in annotations
                 if a.preference is not None and low <= a.length_2 - a.length_1 < high]
        rows.append({"bucket": name, "n": len(group),
                     "win_rate": float(np.mean(group) * 100) if group else math.nan})
    return rows


def write_report(annotations: Sequence[Annotation], output_dir: Path, *, mode: str = "community",
                 difficulty: Sequence[float] | None = None, resamples: int = DEFAULT_LC_RESAMPLES,
                 seed: int = DEFAULT_SEED, plots: bool = True) -> dict[str, Any]:
    """leaderboard.csv (one row per model, AlpacaEval's columns), report.json, report.md and winrate.png."""
    by_model: dict[str, list[int]] = {}
    for index, annotation in enumerate(annotations):
        by_model.setdefault(annotation.generator_2 or "model", []).append(index)
    models = {}
    for name, indices in by_model.items():
        rows = [annotations[i] for i in indices]
        row, fit = leaderboard_row(rows, mode=mode, difficulty=[difficulty[i] for i in indices] if difficulty else None,
                                   resamples=resamples, seed=seed)
        datasets = sorted({a.dataset for a in rows if a.dataset})
        models[name] = {"leaderboard": row, "length_controlled": fit, "by_length_difference": length_buckets(rows),
                        "by_dataset": {d: head_to_head([a.preference for a in rows if a.dataset == d])
                                       for d in datasets}}
    report = {"models": models, "difficulty": difficulty is not None,
              "bootstrap": {"resamples": resamples, "seed": seed}}
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / "leaderboard.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", *LEADERBOARD_COLUMNS])
            for name, part in sorted(models.items(), key=lambda kv: -_sortable(kv[1]["leaderboard"]
                                                                              ["length_controlled_winrate"])):
                writer.writerow([name, *(part["leaderboard"][c] for c in LEADERBOARD_COLUMNS)])
        if plots:
            report["plots"] = [write_winrate_plot(models, output_dir / "winrate.png")]
        (output_dir / "report.json").write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
        (output_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {output_dir}: {exc.strerror or exc}") from None
    return report


def _sortable(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Win rates (AlpacaEval layout)", "",
             "| model | win rate | SE | LC win rate | LC SE | wins | base wins | draws | total | unparseable | "
             "avg length | annotator | baseline |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, part in report["models"].items():
        r = part["leaderboard"]
        lines.append(f"| {name} | {_fmt(r['win_rate'])} | {_fmt(r['standard_error'])} | "
                     f"{_fmt(r['length_controlled_winrate'])} | {_fmt(r['lc_standard_error'])} | {r['n_wins']} | "
                     f"{r['n_wins_base']} | {r['n_draws']} | {r['n_total']} | {r['n_unparseable']} | "
                     f"{r['avg_length']} | {r['annotator'] or '-'} | {r['baseline'] or '-'} |")
    for name, part in report["models"].items():
        fit = part["length_controlled"]
        lines += ["", f"## {name}", "", "Length-controlled GLM (judge/winrate.py): "
                  + ", ".join(f"`{k}` = {v:.4f}" for k, v in fit["coefficients"].items())
                  + f"; sd of the length difference {_fmt(fit['delta_len_sd'], 1)} characters; "
                  + ("with" if fit["difficulty"] else "without") + " the instruction-difficulty term; "
                  + f"LC SE from {fit['resamples']} bootstrap refits."
                  + ("" if not fit["notes"] else " Notes: " + "; ".join(fit["notes"]) + "."),
                  "", "| length difference (model - baseline, chars) | n | win rate |", "|---|---|---|"]
        lines += [f"| {b['bucket']} | {b['n']} | {_fmt(b['win_rate'])} |" for b in part["by_length_difference"]]
        if part["by_dataset"]:
            lines += ["", "| dataset | n | win rate | SE |", "|---|---|---|---|"]
            lines += [f"| {d} | {r['n_total']} | {_fmt(r['win_rate'])} | {_fmt(r['standard_error'])} |"
                      for d, r in part["by_dataset"].items()]
    for name in report.get("plots", []):
        lines += ["", f"![{name}]({name})"]
    return "\n".join(lines) + "\n"


def write_winrate_plot(models: dict[str, Any], path: Path) -> str:
    """One PNG: raw and LC win rate per model (with SE bars), and win rate by length-difference bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(models)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(names))
    raw = [models[n]["leaderboard"]["win_rate"] for n in names]
    raw_se = [models[n]["leaderboard"]["standard_error"] for n in names]
    lc = [models[n]["leaderboard"]["length_controlled_winrate"] for n in names]
    lc_se = [models[n]["leaderboard"]["lc_standard_error"] for n in names]
    left.bar(x - 0.2, raw, 0.4, yerr=np.nan_to_num(raw_se), capsize=3, label="win rate", color="#4a7ab5")
    left.bar(x + 0.2, lc, 0.4, yerr=np.nan_to_num(lc_se), capsize=3, label="length-controlled", color="#e0913a")
    left.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    left.set_ylim(0, 100)
    left.set_ylabel("win rate vs baseline (%)")
    left.set_title("Win rate, ± standard error")
    left.legend(fontsize=8)
    for name in names:
        buckets = models[name]["by_length_difference"]
        right.plot([b["bucket"] for b in buckets], [b["win_rate"] for b in buckets], marker="o", label=name)
    right.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    right.set_ylim(0, 100)
    right.set_xlabel("model length - baseline length (characters)")
    right.set_ylabel("win rate (%)")
    right.set_title("Win rate by length difference")
    right.tick_params(axis="x", labelsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
