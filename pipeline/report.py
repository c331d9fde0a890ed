"""The run report: per stage what went in and out, counts, LLM calls and tokens, wall time, baseline and MUSIC RM
side by side (accuracy per eval set, best-of-N win rate per N), agreement tables and plots, sample MUSIC pairs
and generated conversations, as RUN/report/report.md, report.json and PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path
import shutil
from typing import Any

from pipeline.config import STAGES
from pipeline.stages import StageContext, StageOutcome, pipeline_generators

#: Sample MUSIC pairs and generated conversations the report shows in full.
SAMPLES = 2

#: Registered models whose numbers the report qualifies, with what to say about them (keys: chat.embedded names).
SMALL_MODELS = {
    "qwen2.5-coder-0.5b-instruct": "Qwen2.5-Coder-0.5B-Instruct, a 0.5B instruct model: it follows the roles' "
                                   "formats, but its swapped instructions, answers, reviews and verdicts are a "
                                   "small model's, so kept/dropped counts, LLM-judge agreement and the "
                                   "generated data show what a 0.5B model achieves, not what the papers' far "
                                   "larger simulators produce",
    "qwen2.5-coder-1.5b-instruct": "Qwen2.5-Coder-1.5B-Instruct, a 1.5B instruct model: better formats and "
                                   "answers than the 0.5B, still far below the papers' simulators, so read "
                                   "kept/dropped counts, LLM-judge agreement and the generated data as a "
                                   "1.5B model's",
    "gemma3-270m": "Gemma 3 270M *base* model (not instruction-tuned): agent replies often fail to parse, so "
                   "kept/dropped counts and LLM-judge numbers measure the plumbing, not the method",
    "minilm": "all-MiniLM-L6-v2 encoder (22M parameters) as the RM backbone, trained for minutes on CPU on a few "
              "dozen pairs: its accuracy, the RM judge and the RM scores of generated data are a small RM's, "
              "not the paper's Gemma-2-9B RM",
}
#: The stages whose LLM roles the label block names, with where their backends are configured; the generate
#: stage's generators follow (`llm_sections`).
LLM_SECTIONS = (("augment", "config", "MUSIC pairs"), ("bon", "", "best-of-N policy, user and judge"),
                ("judge", "config", "LLM-judge verdicts"))


def llm_sections() -> list[tuple[str, str, str]]:
    """LLM_SECTIONS, then each generator the generate stage can run, under its section key."""
    return [*LLM_SECTIONS, *(("generate", generator.section, generator.produces)
                             for generator in pipeline_generators())]


def read_markers(run_dir: Path) -> dict[str, dict[str, Any]]:
    markers = {}
    for stage in STAGES[:-1]:
        path = run_dir / stage / "stage.json"
        if path.is_file():
            markers[stage] = json.loads(path.read_text(encoding="utf-8"))
    return markers


def registered_name(model: str) -> str:
    """`embedded` as the registered model it stands for; other names unchanged."""
    from chat.embedded import DEFAULT_INSTRUCT, EMBEDDED

    return DEFAULT_INSTRUCT if model == EMBEDDED else model


def llm_models(ctx: StageContext) -> dict[str, list[str]]:
    """Registered model name -> what the run made with it, from the stages' backends (their defaults:
    the embedded model)."""
    config = ctx.config
    made: dict[str, list[str]] = {}
    for stage, key, what in llm_sections():
        if (key not in config.sections[stage] and key != "config") or not (key or config.sections[stage]):
            continue
        backends = ((config.stage_options(stage, key).get("backends") if key
                     else config.resolve_backends(config.sections[stage].get("backends"), f"{stage}.backends"))
                    or {"default": {"model": "embedded"}})
        for spec in backends.values():
            model = spec.get("model", "embedded") if isinstance(spec, dict) else "embedded"
            entries = made.setdefault(registered_name(str(model)), [])
            if what not in entries:
                entries.append(what)
    return made


def rm_values(ctx: StageContext) -> dict[str, Any]:
    rm_section = ctx.config.sections["rm_train"]
    rm_base = rm_section.get("config") or {}
    if isinstance(rm_base, str):
        from chat.config import load_yaml

        rm_base = load_yaml(rm_base)
    return {**rm_base, **(rm_section.get("overrides") or {})}


def model_notes(ctx: StageContext) -> list[str]:
    """Which numbers come from small models, found from the backends and RM the config uses."""
    notes = []
    for model, made in llm_models(ctx).items():
        if model in SMALL_MODELS:
            notes.append(f"{', '.join(made)}: {SMALL_MODELS[model]}.")
    values = rm_values(ctx)
    rm_model = values.get("model_name_or_path")
    if values.get("model_config"):
        notes.append(f"Reward models: a randomly initialised tiny {values['model_config'].get('model_type', '')} "
                     "model (from model_config): their accuracy is noise; they exercise the code path only.")
    elif rm_model in SMALL_MODELS:
        notes.append(f"Reward models, baseline and MUSIC RM (RM accuracy, best-of-N picks; the MUSIC RM as RM judge, "
                     "RM reviewer and filter of generation): "
                     f"{SMALL_MODELS[rm_model]}.")
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
        if not ran(stage, markers):
            lines.append(f"| {stage} | - | skipped: {marker['counts']['skipped']} | - | - | - | - | - |")
            continue
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


def read_jsonl(path: str | Path | None) -> list[dict[str, Any]]:
    """The records of a stage's JSONL output (none when the stage wrote no such file)."""
    if not path or not Path(path).is_file():
        return []
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def quoted(text: str) -> str:
    """`text` as a Markdown blockquote, line by line (code fences inside stay intact)."""
    return "\n".join(f"> {line}" if line.strip() else ">" for line in (text.strip() or "(empty)").splitlines())


def message_lines(label: str, content: str) -> list[str]:
    return [f"**{label}**", "", quoted(content), ""]


def numbered(messages: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(user turn number, message) for each message; a system message is turn 0."""
    turn, result = 0, []
    for message in messages:
        turn += message["role"] == "user"
        result.append((turn, message))
    return result


def pick_pairs(pairs: list[dict[str, Any]], count: int = SAMPLES) -> list[dict[str, Any]]:
    """The first pairs by id, preferring different divergence turns (so the samples show different splits)."""
    ordered = sorted(pairs, key=lambda pair: str(pair.get("id")))
    picked: list[dict[str, Any]] = []
    for pair in ordered:
        turns = {(p.get("meta") or {}).get("divergence_turn") for p in picked}
        if len(picked) < count and (pair.get("meta") or {}).get("divergence_turn") not in turns:
            picked.append(pair)
    return picked + [pair for pair in ordered if pair not in picked][:count - len(picked)]


def pair_lines(pair: dict[str, Any], number: int) -> list[str]:
    """One MUSIC pair: the turns both branches share, then the chosen and the rejected branch from the
    divergence turn d on, each branch's first own message marked, swapped instructions shown
    (docs/methods.md, MUSIC steps 3-4)."""
    meta = pair.get("meta") or {}
    d = meta.get("divergence_turn")
    swaps = {swap.get("turn"): swap.get("swapped") for swap in meta.get("swaps") or []}
    chosen, rejected = numbered(pair["chosen"]), numbered(pair["rejected"])
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared][1] == rejected[shared][1]:
        shared += 1
    lines = [f"### Pair {number}: `{pair.get('id')}` (seed `{meta.get('source_id', '?')}`, divergence at turn "
             f"{d} of {meta.get('turns', '?')})", ""]
    if shared:
        lines += ["Both branches:", ""]
        for turn, message in chosen[:shared]:
            lines += message_lines(f"turn {turn} · {message['role']}", message["content"])
    for name, branch in (("Chosen", chosen), ("Rejected", rejected)):
        lines += [f"**{name} branch, from the divergence on:**", ""]
        for index, (turn, message) in enumerate(branch[shared:]):
            label = f"turn {turn} · {message['role']}" + (f" ◀ divergence (turn {d})" if index == 0 else "")
            if name == "Rejected" and message["role"] == "assistant" and turn in swaps:
                swapped = swaps[turn]
                label += (f" — answers the swapped instruction “{swapped}”" if swapped
                          else " — the seed pair's own rejected answer")
            lines += message_lines(label, message["content"])
    return lines


def pick_conversations(outputs: dict[str, str], count: int = SAMPLES) -> list[tuple[str, dict[str, Any]]]:
    """(generator, record): the generators' first records by id, taken in turn (one of each when both kept some)."""
    queues = {name: sorted(read_jsonl(path), key=lambda record: str(record.get("id")))
              for name, path in outputs.items()}
    picked: list[tuple[str, dict[str, Any]]] = []
    while len(picked) < count and any(queues.values()):
        for name, queue in queues.items():
            if queue and len(picked) < count:
                picked.append((name, queue.pop(0)))
    return picked


def conversation_lines(generator: str, record: dict[str, Any], number: int) -> list[str]:
    meta = record.get("meta") or {}
    scores = meta.get("rm_turn_scores") or ([meta["rm_score"]] if meta.get("rm_score") is not None else [])
    score = f", RM score{'s per turn' if len(scores) > 1 else ''} {', '.join(_num(s, 2) for s in scores)}" \
        if scores else ""
    messages = numbered(record.get("messages") or [])
    user_turns = max((turn for turn, _ in messages), default=0)
    lines = [f"### Conversation {number}: `{record.get('id')}` ({generator.replace('_', '-')}, "
             f"{user_turns} user turn{'' if user_turns == 1 else 's'}{score})", ""]
    for turn, message in messages:
        lines += message_lines(f"turn {turn} · {message['role']}", message["content"])
    return lines


def sample_lines(markers: dict[str, dict[str, Any]]) -> list[str]:
    """Sample MUSIC pairs and generated conversations, in full."""
    lines: list[str] = []
    pairs = pick_pairs(read_jsonl((markers.get("augment") or {}).get("outputs", {}).get("pairs")))
    if pairs:
        lines += ["## Sample MUSIC pairs", "", "Chosen and rejected share every message before the divergence "
                  "turn's answer; from there the rejected assistant answers a silently swapped instruction (or "
                  "gives the seed pair's own rejected answer, where marked).", ""]
        for number, pair in enumerate(pairs, 1):
            lines += pair_lines(pair, number)
    sections = {generator.section for generator in pipeline_generators()}
    outputs = {name: path for name, path in ((markers.get("generate") or {}).get("outputs") or {}).items()
               if name in sections}
    conversations = pick_conversations(outputs)
    if outputs:
        lines += ["## Sample generated conversations", ""]
        if not conversations:
            lines += ["None: no generator kept a conversation (see *Generation with the RM* for why).", ""]
        for number, (generator, record) in enumerate(conversations, 1):
            lines += conversation_lines(generator, record, number)
    return lines


def plot_stages(markers: dict[str, dict[str, Any]], path: Path) -> None:
    """Wall time and LLM calls of each stage that ran, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = [name for name in markers if ran(name, markers)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(names, [markers[n].get("wall_s", 0) for n in names], color="#4a7ab5")
    left.set_ylabel("wall time of the completing run (s)")
    right.bar(names, [(markers[n].get("usage") or {}).get("llm_calls", 0) for n in names], color="#b5764a")
    right.set_ylabel("LLM calls")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
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


#: Row labels of rm_eval's held-out sets (pipeline/stages.py EVAL_SETS) and RewardBench.
EVAL_SET_LABELS = {"multi_turn": "D held-out, multi-turn (last-turn contrast)", "music": "MUSIC held-out",
                   "single_turn": "D held-out, single-turn", "rewardbench": "RewardBench"}
#: The two RMs, in the report's column order.
RM_COLUMNS = (("baseline", "baseline RM (D)"), ("music", "MUSIC RM (D_aug)"))


def accuracy_cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("accuracy") is None:
        return "n/a"
    ci = entry.get("ci95") or [None, None]
    return f"{_num(entry['accuracy'])} [{_num(ci[0])}, {_num(ci[1])}]"


def rm_train_lines(marker: dict[str, Any]) -> list[str]:
    """Both RMs' training, the shared step count, and the pairs that lost their divergence turn to truncation."""
    counts, metrics = marker.get("counts") or {}, marker.get("metrics") or {}
    lines = ["## RM training", ""]
    if "max_steps" in counts:
        lines += [f"Both RMs: one recipe and seed, {counts['max_steps']} optimizer steps ({counts.get('steps_from')}).",
                  ""]
    for name, label in RM_COLUMNS:
        c, m = counts.get(name) or {}, metrics.get(name) or {}
        if c:
            lines.append(f"- {label}: {c.get('global_step')} steps on {c.get('train_pairs')} pairs, "
                         f"{c.get('truncated_sequences')} sequences truncated from the left (none dropped), "
                         f"{_num(m.get('tokens_per_second'), 0)} tokens/s; training loss {_num(m.get('train_loss'))}")
    truncation = counts.get("divergence_truncation") or {}
    if truncation:
        lines.append("")
        lines.append(f"Divergence turn vs the RM's max_length {truncation.get('max_length')} (the trainer's left "
                     "truncation, the RM's tokenizer, D_aug's training pairs): a pair whose divergence turn is cut "
                     "away teaches nothing.")
        lines += ["", "| pairs | n | truncated (either side) | divergence turn lost | lost on both sides | "
                      "cut inside the divergence turn |", "|---|---|---|---|---|---|"]
        for origin in ("music", "original", "all"):
            entry = truncation.get(origin)
            if entry:
                lines.append(f"| {origin} | {entry['pairs']} | {entry['truncated']} | {entry['lost']} | "
                             f"{entry['lost_both']} | {entry['cut_inside']} |")
    if metrics.get("budget_warning"):
        lines += ["", f"**Warning:** {metrics['budget_warning']}."]
    return lines + [""]


def accuracy_lines(metrics: dict[str, Any]) -> list[str]:
    """Baseline and MUSIC RM side by side: accuracy with 95% bootstrap CI per held-out set (and RewardBench)."""
    lines = ["## RM accuracy: baseline vs MUSIC RM", "",
             "| eval set | n | " + " | ".join(f"{label} [95% CI]" for _, label in RM_COLUMNS)
             + " | MUSIC - baseline | prefer longer |", "|---|---|---|---|---|---|"]
    for name, label in EVAL_SET_LABELS.items():
        entries = metrics.get(name)
        if entries is None or (not entries and name == "rewardbench"):
            continue
        if not entries:
            lines.append(f"| {label} | 0 | none in this run | | | |")
            continue
        base, music = entries.get("baseline") or {}, entries.get("music") or {}
        delta = (music["accuracy"] - base["accuracy"]
                 if music.get("accuracy") is not None and base.get("accuracy") is not None else None)
        n = (music or base).get("n")
        longer = (music or base).get("baselines", {}).get("prefer_longer")
        lines.append(f"| {label} | {n} | {accuracy_cell(base)} | {accuracy_cell(music)} | "
                     f"{'n/a' if delta is None else f'{delta:+.3f}'} | {_num(longer)} |")
    rewardbench = metrics.get("rewardbench") or {}
    sections = sorted({s for entry in rewardbench.values() for s in (entry.get("sections") or {})})
    if sections:
        lines += ["", "| RewardBench section | " + " | ".join(label for _, label in RM_COLUMNS) + " |",
                  "|---|---|---|"]
        for section in sections:
            lines.append(f"| {section} | " + " | ".join(
                _num((rewardbench.get(name, {}).get("sections") or {}).get(section)) for name, _ in RM_COLUMNS) + " |")
    return lines + [""]


def bon_lines(marker: dict[str, Any], plot: str | None) -> list[str]:
    """Win rate of the MUSIC RM over the baseline per N, with its 95% bootstrap CI."""
    counts, by_n = marker.get("counts") or {}, (marker.get("metrics") or {}).get("by_n") or {}
    lines = ["## Multi-turn best-of-N: MUSIC RM vs baseline RM", "",
             f"{counts.get('prompts')} first prompts, {counts.get('turns')} turns; at each turn both RMs pick among "
             "the same N policy samples; the judge sees both orders (a tie or an order-inconsistent verdict counts "
             "0.5).", "", "| N | prompts | MUSIC wins | ties | baseline wins | unparseable | identical | "
             "win rate of MUSIC RM [95% CI] |", "|---|---|---|---|---|---|---|---|"]
    for n in sorted(by_n, key=int):
        r = by_n[n]
        ci = r.get("ci") or [None, None]
        lines.append(f"| {n} | {r.get('n_prompts')} | {r.get('wins')} | {r.get('ties')} | {r.get('losses')} | "
                     f"{r.get('unparseable')} | {r.get('identical')} | {_num(r.get('win_rate'))} "
                     f"[{_num(ci[0])}, {_num(ci[1])}] |")
    if plot:
        lines += ["", f"![win rate]({plot})"]
    return lines + [""]


def render(ctx: StageContext, markers: dict[str, dict[str, Any]], plots: dict[str, str]) -> str:
    lines = [f"# turnwise run report: `{ctx.config.source}`", ""]
    notes = ([ctx.config.label] if ctx.config.label else []) + model_notes(ctx)
    if notes:
        lines += ["> **Which numbers come from which models**", ">"] + [f"> - {note}" for note in notes] + [""]
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
        lines += rm_train_lines(markers["rm_train"])
    if markers.get("rm_eval", {}).get("metrics"):
        lines += accuracy_lines(markers["rm_eval"]["metrics"])
        if plots.get("rewards"):
            lines += [f"![rewards]({plots['rewards']})", ""]
    if (markers.get("bon") or {}).get("metrics"):
        lines += bon_lines(markers["bon"], plots.get("win_rate"))
    if ran("judge", markers):
        lines += ["## Judges: LLM vs MUSIC RM vs dataset labels", ""] + agreement_rows(markers["judge"])
        if plots.get("agreement"):
            lines += ["", f"![agreement]({plots['agreement']})"]
        lines += ["", "Unparseable verdicts are excluded from `compared`; the dataset labels always prefer the "
                  "chosen reply, so kappa against them is undefined or near 0.", ""]
    if ran("generate", markers):
        generate = markers["generate"]
        lines += ["## Generation with the RM", ""]
        lines += [kept_line(name, counts) for name, counts in (generate.get("counts") or {}).items()]
        lines += [""] + generation_rows(generate) + [""]
    lines += sample_lines(markers)
    return "\n".join(lines)


def ran(stage: str, markers: dict[str, Any]) -> bool:
    """Whether `stage` finished with output (a stage left out of the config records itself as skipped)."""
    return stage in markers and not (markers[stage].get("counts") or {}).get("skipped")


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
    if copy_plot(ctx.stage_dir("bon") / "win_rate.png", directory, "bon-win-rate.png"):
        plots["win_rate"] = "bon-win-rate.png"
    confusion = ctx.stage_dir("judge") / "llm-vs-rm" / "confusion.png"
    if copy_plot(confusion, directory, "confusion-llm-vs-rm.png"):
        plots["agreement"] = "confusion-llm-vs-rm.png"
    markdown = render(ctx, markers, plots)
    (directory / "report.md").write_text(markdown, encoding="utf-8")
    (directory / "report.json").write_text(json.dumps({"config": str(ctx.config.source), "label": ctx.config.label,
                                                       "model_notes": model_notes(ctx),
                                                       "stages": markers}, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    outputs = {"markdown": str(directory / "report.md"), "json": str(directory / "report.json")}
    outputs.update({name: str(directory / file) for name, file in plots.items()})
    return StageOutcome(outputs=outputs, counts={"stages": len(markers)})
