"""The run report: per stage what went in and out, counts, LLM calls and tokens, wall time, RM accuracy,
agreement tables and plots, as RUN/report/report.md, report.json and PNGs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import STAGES
from pipeline.stages import StageContext, StageOutcome

#: Models whose numbers the report flags as tiny-model numbers, with what to say about them.
TINY_MODELS = {
    "embedded": "Gemma 3 270M *base* model (not instruction-tuned): agent replies often fail to parse, so "
                "kept/dropped counts and LLM-judge numbers measure the plumbing, not the method",
    "minilm": "all-MiniLM-L6-v2 encoder (22M parameters) as the RM backbone, trained for minutes on CPU on a few "
              "dozen pairs: its accuracy is a smoke-test number, not the paper's",
}


def read_markers(run_dir: Path) -> dict[str, dict[str, Any]]:
    markers = {}
    for stage in STAGES[:-1]:
        path = run_dir / stage / "stage.json"
        if path.is_file():
            markers[stage] = json.loads(path.read_text(encoding="utf-8"))
    return markers


def tiny_model_notes(ctx: StageContext) -> list[str]:
    """Which numbers come from tiny models, found from the backends and RM the config uses."""
    config = ctx.config
    specs = list(config.backends.values())
    for stage in ("augment", "judge"):
        specs += list((config.stage_options(stage).get("backends") or {}).values())
    models = {str(spec.get("model", "")) for spec in specs if isinstance(spec, dict)}
    rm_section = config.sections["rm_train"]
    rm_base = rm_section.get("config") or {}
    if isinstance(rm_base, str):
        from chat.config import load_yaml

        rm_base = load_yaml(rm_base)
    rm_values = {**rm_base, **(rm_section.get("overrides") or {})}
    rm_model = rm_values.get("model_name_or_path")
    notes = []
    if "embedded" in models:
        notes.append(f"LLM roles: {TINY_MODELS['embedded']}.")
    if rm_values.get("model_config"):
        notes.append(f"Reward model: a randomly initialised tiny {rm_values['model_config'].get('model_type', '')} "
                     "model (from model_config): its accuracy is noise; it exercises the code path only.")
    elif rm_model in TINY_MODELS:
        notes.append(f"Reward model: {TINY_MODELS[rm_model]}.")
    return notes


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def relative(path: str, run_dir: Path) -> str:
    try:
        return str(Path(path).relative_to(run_dir))
    except ValueError:
        return str(path)


def stage_rows(markers: dict[str, dict[str, Any]], run_dir: Path) -> list[str]:
    lines = ["| stage | wall s | output | LLM calls | cache hits | prompt tokens | completion tokens | resumed |",
             "|---|---|---|---|---|---|---|---|"]
    for stage, marker in markers.items():
        usage = marker.get("usage") or {}
        outputs = ", ".join(f"`{relative(p, run_dir)}`" for p in (marker.get("outputs") or {}).values())
        lines.append(f"| {stage} | {marker.get('wall_s', 0):.1f} | {outputs} | {usage.get('llm_calls', 0)} | "
                     f"{usage.get('cache_hits', 0)} | {usage.get('prompt_tokens', 0)} | "
                     f"{usage.get('completion_tokens', 0)} | {'yes' if marker.get('resumed') else 'no'} |")
    return lines


def kept_line(name: str, counts: dict[str, Any]) -> str:
    dropped = counts.get("dropped_this_run") or {}
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())) or "none"
    inputs = f"{counts.get('inputs', 0)} {counts.get('unit', 'inputs')}"
    return (f"- {name}: kept {counts.get('kept_total', 0)} from {inputs} "
            f"(dropped in the completing run: {reasons}; carried over from an earlier run: "
            f"{counts.get('carried_over', 0)})")


def agreement_rows(judge: dict[str, Any]) -> list[str]:
    lines = ["| comparison | matched | compared | unparseable (a / b) | accuracy [95% CI] | Cohen's kappa |",
             "|---|---|---|---|---|---|"]
    for name in ("llm-vs-labels", "rm-vs-labels", "llm-vs-rm"):
        entry = (judge.get("metrics") or {}).get(name)
        if not entry:
            continue
        counts, overall = entry["counts"], entry.get("agreement") or {}
        accuracy = (f"{_num(overall.get('accuracy'))} [{_num(overall['accuracy_ci'][0])}, "
                    f"{_num(overall['accuracy_ci'][1])}]") if overall else "n/a (nothing comparable)"
        lines.append(f"| {name} | {counts.get('matched', 0)} | {counts.get('compared', 0)} | "
                     f"{counts.get('unparseable_a', 0)} / {counts.get('unparseable_b', 0)} | {accuracy} | "
                     f"{_num(overall.get('kappa')) if overall else 'n/a'} |")
    return lines


def generation_rows(generate: dict[str, Any]) -> list[str]:
    lines = ["| generator | kept | distinct-2 | mean pairwise ROUGE-L | embedding dispersion | RM score mean |",
             "|---|---|---|---|---|---|"]
    for name, counts in (generate.get("counts") or {}).items():
        stats = (generate.get("metrics") or {}).get(name) or {}
        rm_score = (stats.get("rm_score") or {}).get("mean")
        lines.append(f"| {name} | {counts.get('kept_total', 0)} | {_num(stats.get('distinct_2'))} | "
                     f"{_num(stats.get('mean_pairwise_rouge_l'))} | {_num(stats.get('embedding_dispersion'))} | "
                     f"{_num(rm_score)} |")
    return lines


def plot_stages(markers: dict[str, dict[str, Any]], path: Path) -> None:
    """Wall time and LLM calls per stage, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(markers)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(names, [markers[n].get("wall_s", 0) for n in names], color="#4a7ab5")
    left.set_ylabel("wall time of the completing run (s)")
    right.bar(names, [(markers[n].get("usage") or {}).get("llm_calls", 0) for n in names], color="#b5764a")
    right.set_ylabel("LLM calls")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=35)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def copy_plot(source: str | Path, directory: Path, name: str) -> str | None:
    source = Path(source)
    if not source.is_file():
        return None
    shutil.copyfile(source, directory / name)
    return name


def render(ctx: StageContext, markers: dict[str, dict[str, Any]], plots: dict[str, str]) -> str:
    lines = [f"# turnwise run report: `{ctx.config.source}`", ""]
    notes = ([ctx.config.label] if ctx.config.label else []) + tiny_model_notes(ctx)
    if notes:
        lines += ["> **Which numbers come from tiny models**", ">"] + [f"> - {note}" for note in notes] + [""]
    lines += ["## Stages", ""] + stage_rows(markers, ctx.run_dir) + ["", f"![stages]({plots['stages']})", ""]
    lines += ["LLM calls and tokens are those of the run that completed each stage; calls answered from the run's "
              "response cache count as cache hits, not calls.", ""]
    if "augment" in markers:
        lines += ["## Augment (MUSIC)", "", kept_line("MUSIC pairs", markers["augment"]["counts"]), ""]
    if "mix" in markers:
        c = markers["mix"]["counts"]
        lines += ["## Mix", "", f"- original {c.get('original')} + MUSIC {c.get('music_used')} (of "
                  f"{c.get('music_available')}); {c.get('duplicates_removed')} duplicates removed; train "
                  f"{c.get('train')}, eval {c.get('eval')}", ""]
    if "rm_train" in markers:
        c, m = markers["rm_train"]["counts"], markers["rm_train"]["metrics"]
        lines += ["## RM training", "", f"- {c.get('global_step')} steps on {c.get('train_pairs')} pairs, "
                  f"{c.get('truncated_sequences')} sequences truncated from the left (none dropped), "
                  f"{_num(m.get('tokens_per_second'), 0)} tokens/s; training loss {_num(m.get('train_loss'))}", ""]
    if markers.get("rm_eval", {}).get("metrics"):
        m = markers["rm_eval"]["metrics"]
        lines += ["## RM accuracy on the held-out split", "", "| scorer | accuracy |", "|---|---|",
                  f"| reward model | {_num(m['accuracy'])} [{_num(m['ci95'][0])}, {_num(m['ci95'][1])}] (n={m['n']}) |"]
        lines += [f"| baseline: {name.replace('_', ' ')} | {_num(value)} |" for name, value in m["baselines"].items()]
        for key, table in (m.get("groups") or {}).items():
            lines += ["", f"By {key}: " + ", ".join(f"{value} {_num(acc)}" for value, acc in sorted(table.items()))]
        if plots.get("rewards"):
            lines += ["", f"![rewards]({plots['rewards']})"]
        lines.append("")
    if "judge" in markers:
        lines += ["## Judges: LLM vs RM vs dataset labels", ""] + agreement_rows(markers["judge"])
        if plots.get("agreement"):
            lines += ["", f"![agreement]({plots['agreement']})"]
        lines += ["", "Unparseable verdicts are excluded from `compared`; the dataset labels always prefer the "
                  "chosen reply, so kappa against them is undefined or near 0.", ""]
    if "generate" in markers:
        generate = markers["generate"]
        lines += ["## Generation with the RM", ""]
        lines += [kept_line(name, counts) for name, counts in (generate.get("counts") or {}).items()]
        lines += [""] + generation_rows(generate) + [""]
    return "\n".join(lines)


def write_report(ctx: StageContext) -> StageOutcome:
    """The report stage: RUN/report/report.md, report.json, stages.png and copies of the stage plots."""
    directory = ctx.stage_dir("report")
    directory.mkdir(parents=True, exist_ok=True)
    markers = read_markers(ctx.run_dir)
    plots = {"stages": "stages.png"}
    plot_stages(markers, directory / plots["stages"])
    rewards = (markers.get("rm_eval") or {}).get("outputs", {}).get("histogram")
    if rewards and copy_plot(rewards, directory, "rewards.png"):
        plots["rewards"] = "rewards.png"
    confusion = ctx.stage_dir("judge") / "llm-vs-rm" / "confusion.png"
    if copy_plot(confusion, directory, "confusion-llm-vs-rm.png"):
        plots["agreement"] = "confusion-llm-vs-rm.png"
    markdown = render(ctx, markers, plots)
    (directory / "report.md").write_text(markdown, encoding="utf-8")
    (directory / "report.json").write_text(json.dumps({"config": str(ctx.config.source), "label": ctx.config.label,
                                                       "tiny_model_notes": tiny_model_notes(ctx),
                                                       "stages": markers}, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    outputs = {"markdown": str(directory / "report.md"), "json": str(directory / "report.json")}
    outputs.update({name: str(directory / file) for name, file in plots.items()})
    return StageOutcome(outputs=outputs, counts={"stages": len(markers)})
