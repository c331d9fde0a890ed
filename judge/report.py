"""`judge agree`: match two judges' records and write the agreement report (JSON, Markdown, one PNG).

When the compared records hold both verdict modes of an LLM judge (`detail.verdict_mode` "text" and
"logprob", in one file or several), each mode is matched against the reference on its own and the
report shows the modes side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chat.errors import ConfigError, InputError
from chat.stats import CI_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED
from judge import agreement as stats
from judge.verdicts import GradeRecord, JudgmentFile, VerdictRecord, read_judgments


def _match_key(record: Any) -> tuple:
    if isinstance(record, VerdictRecord):
        return (record.id, record.turn, tuple(sorted((record.a, record.b))))
    return (record.id, record.turn)


def _index(judgments: JudgmentFile) -> dict[tuple, Any]:
    index: dict[tuple, Any] = {}
    for record in judgments.records:
        key = _match_key(record)
        if key in index:
            turn = f", turn {record.turn}" if record.turn is not None else ""
            raise InputError(judgments.path, None, "id", f"duplicate record for id {record.id!r}{turn}")
        index[key] = record
    return index


def match_records(x: JudgmentFile, y: JudgmentFile) -> tuple[list[tuple[Any, Any]], dict[str, int]]:
    """Pairs (record of x, record of y) judging the same thing, y oriented like x; plus counts.

    Pairwise records match on (id, turn, the two names compared); a y record listing the names the
    other way round is flipped. Grades match on (id, turn).
    """
    if x.kind != y.kind:
        raise ConfigError(f"cannot compare {x.kind} judgments ({x.path}) with {y.kind} judgments ({y.path})")
    x_index, y_index = _index(x), _index(y)
    matched = []
    for key, record_x in x_index.items():
        record_y = y_index.get(key)
        if record_y is None:
            continue
        if isinstance(record_x, VerdictRecord) and (record_y.a, record_y.b) != (record_x.a, record_x.b):
            record_y = record_y.flipped()
        matched.append((record_x, record_y))
    counts = {"records_a": len(x_index), "records_b": len(y_index), "matched": len(matched),
              "only_in_a": len(x_index) - len(matched), "only_in_b": len(y_index) - len(matched)}
    if not matched:
        raise InputError(y.path, None, "id", f"no record matches one of {x.path} on (id, turn"
                         f"{', compared names' if x.kind == 'pairwise' else ''}); are these judgments of the same items?")
    return matched, counts


def pairwise_report(x: JudgmentFile, y: JudgmentFile, *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Agreement of y's verdicts with x's (x is the reference), with breakdowns and both judges' biases."""
    matched, counts = match_records(x, y)
    counts["unparseable_a"] = sum(1 for rx, _ in matched if rx.winner is None)
    counts["unparseable_b"] = sum(1 for _, ry in matched if ry.winner is None)
    usable = [(rx, ry) for rx, ry in matched if rx.winner is not None and ry.winner is not None]
    counts["compared"] = len(usable)
    labels_x = stats.encode_labels([rx.winner for rx, _ in usable])
    labels_y = stats.encode_labels([ry.winner for _, ry in usable])
    categories = [rx.category or ry.category or "(none)" for rx, ry in usable]
    turns = ["all" if rx.turn is None else rx.turn for rx, _ in usable]

    def summary(lx: np.ndarray, ly: np.ndarray) -> dict[str, Any]:
        return stats.pairwise_agreement(lx, ly, resamples=resamples, seed=seed).to_dict()

    overall = summary(labels_x, labels_y) if usable else None
    return {
        "kind": "pairwise",
        "a": _describe_file(x), "b": _describe_file(y),
        "counts": counts,
        "agreement": overall,
        "by_category": stats.breakdown(categories, labels_x, labels_y, summary) if usable else {},
        "by_turn": stats.breakdown(turns, labels_x, labels_y, summary) if usable else {},
        "judges": {"a": judge_biases([rx for rx, _ in matched]), "b": judge_biases([ry for _, ry in matched])},
        "labels": list(stats.LABELS),
    }


def judge_biases(records: Sequence[VerdictRecord]) -> dict[str, Any]:
    """One judge's verdict shares, win rate of side A, position consistency and length bias (where recorded)."""
    decided = [r.winner for r in records if r.winner is not None]
    shares = {label: (decided.count(label) / len(decided) if decided else math.nan) for label in stats.LABELS}
    with_orders = [r for r in records if isinstance(r.detail.get("orders"), dict)]
    verdict_per_order = {order: sum(1 for r in with_orders if r.detail["orders"].get(order) is not None)
                         / len(with_orders) for order in ("AB", "BA")} if with_orders else None
    with_lengths = [r for r in records if r.winner is not None and r.detail.get("len_a") is not None
                    and r.detail.get("len_b") is not None]
    return {
        "n": len(records), "unparseable": len(records) - len(decided), "shares": shares,
        "verdict_per_order": verdict_per_order,
        "win_rate_a": stats.win_rate(decided) if decided else math.nan,
        "position_consistency": stats.position_consistency(
            [r.detail["orders"].get("AB") for r in with_orders], [r.detail["orders"].get("BA") for r in with_orders])
        if with_orders else None,
        "length_bias": stats.length_bias([r.winner for r in with_lengths], [r.detail["len_a"] for r in with_lengths],
                                         [r.detail["len_b"] for r in with_lengths]) if with_lengths else None,
        "length_buckets": length_buckets(with_lengths) if with_lengths else None,
    }


def grade_report(x: JudgmentFile, y: JudgmentFile, *, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Rank agreement (Spearman, Kendall) of y's scores with x's, overall, per category and per turn."""
    matched, counts = match_records(x, y)
    counts["unparseable_a"] = sum(1 for rx, _ in matched if rx.score is None)
    counts["unparseable_b"] = sum(1 for _, ry in matched if ry.score is None)
    usable: list[tuple[GradeRecord, GradeRecord]] = [(rx, ry) for rx, ry in matched
                                                       if rx.score is not None and ry.score is not None]
    counts["compared"] = len(usable)

    def summary(group: list[tuple[GradeRecord, GradeRecord]]) -> dict[str, Any]:
        sx = [rx.score for rx, _ in group]
        sy = [ry.score for _, ry in group]
        return {"n": len(group), **stats.rank_correlations(sx, sy),
                "spearman_ci": list(stats.bootstrap_spearman_ci(sx, sy, resamples=resamples, seed=seed)),
                "mean_a": float(np.mean(sx)) if sx else math.nan, "mean_b": float(np.mean(sy)) if sy else math.nan}

    def grouped(key_of: Any) -> dict[str, Any]:
        groups: dict[str, list] = {}
        for pair in usable:
            groups.setdefault(str(key_of(pair)), []).append(pair)
        return {key: summary(groups[key]) for key in sorted(groups)}

    return {
        "kind": "grade", "a": _describe_file(x), "b": _describe_file(y), "counts": counts,
        "agreement": summary(usable),
        "by_category": grouped(lambda p: p[0].category or p[1].category or "(none)"),
        "by_turn": grouped(lambda p: "all" if p[0].turn is None else p[0].turn),
        "scores": [[rx.score, ry.score] for rx, ry in usable],
    }


def _describe_file(judgments: JudgmentFile) -> dict[str, Any]:
    judges = sorted({r.judge for r in judgments.records if r.judge})
    return {"path": judgments.path, "layout": judgments.layout, "judges": judges[:5]}


def verdict_mode(record: Any) -> str | None:
    """The verdict mode an LLM judge recorded ("text" / "logprob"); None for other judges and imports."""
    mode = record.detail.get("verdict_mode")
    return mode if isinstance(mode, str) else None


def split_by_mode(judgments: JudgmentFile) -> dict[str, JudgmentFile]:
    """The records of each verdict mode as a file of their own, when there are two modes or more ({} otherwise).
    Records without a mode join no group: in a file with modes they would be matched twice."""
    modes = sorted({m for m in map(verdict_mode, judgments.records) if m is not None})
    if len(modes) < 2:
        return {}
    return {mode: JudgmentFile(f"{judgments.path} [{mode}]", judgments.layout, judgments.kind,
                               [r for r in judgments.records if verdict_mode(r) == mode]) for mode in modes}


def read_compared(paths: str | Path | Sequence[str | Path]) -> JudgmentFile:
    """One or more compared judgment files as one (records concatenated); they must be of one kind."""
    files = [read_judgments(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    kinds = {f.kind for f in files}
    if len(kinds) > 1:
        raise ConfigError("--b: cannot combine " + " and ".join(f"{f.kind} judgments ({f.path})" for f in files))
    if len(files) == 1:
        return files[0]
    return JudgmentFile(" + ".join(f.path for f in files), "/".join(sorted({f.layout for f in files})),
                        files[0].kind, [r for f in files for r in f.records])


def mode_report(x: JudgmentFile, y: JudgmentFile, by_mode: dict[str, JudgmentFile], *, resamples: int,
                seed: int) -> dict[str, Any]:
    """One report of each verdict mode of y against the reference x, to be shown side by side."""
    build = pairwise_report if x.kind == "pairwise" else grade_report
    return {"kind": x.kind, "a": _describe_file(x), "b": _describe_file(y), "modes": list(by_mode),
            "by_mode": {mode: build(x, part, resamples=resamples, seed=seed) for mode, part in by_mode.items()}}


def agree(path_a: str | Path, path_b: str | Path | Sequence[str | Path], output_dir: str | Path, *,
          resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, plots: bool = True) -> dict[str, Any]:
    """Read the reference and the compared judgment file(s), compute the report (per verdict mode when the
    compared records hold several), write report.json, report.md and the PNG (`write_plots`)."""
    x, y = read_judgments(path_a), read_compared(path_b)
    if split_by_mode(x):
        raise ConfigError(f"--a {x.path} holds verdicts of several verdict modes; give it as --b (against a "
                          "reference such as the labelled pairs) to compare the modes side by side")
    by_mode = split_by_mode(y)
    if by_mode:
        report = mode_report(x, y, by_mode, resamples=resamples, seed=seed)
    else:
        report = (pairwise_report if x.kind == "pairwise" else grade_report)(x, y, resamples=resamples, seed=seed)
    report["bootstrap"] = {"resamples": resamples, "seed": seed, "level": CI_LEVEL}
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if plots and by_mode:
            for mode, part in report["by_mode"].items():
                part["plots"] = write_plots(part, output_dir, prefix=f"{mode}_")
        elif plots:
            report["plots"] = write_plots(report, output_dir)
        (output_dir / "report.json").write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
        (output_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {output_dir}: {exc.strerror or exc}") from None
    return report


def json_safe(value: Any) -> Any:
    """NaN -> null so the report is strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# ----------------------------------------------------------------------------- rendering

def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(interval: Sequence[float]) -> str:
    return f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def render_markdown(report: dict[str, Any]) -> str:
    if "by_mode" in report:
        return render_modes_markdown(report)
    counts = report["counts"]
    lines = [f"# Judge agreement: {report['b']['path']} vs {report['a']['path']}", "",
             f"Reference (a): `{report['a']['path']}` ({report['a']['layout']}; {', '.join(report['a']['judges']) or '-'})",
             f"Compared (b): `{report['b']['path']}` ({report['b']['layout']}; {', '.join(report['b']['judges']) or '-'})",
             "",
             f"Records: a {counts['records_a']}, b {counts['records_b']}, matched {counts['matched']}, "
             f"compared {counts['compared']} (unparseable: a {counts['unparseable_a']}, b {counts['unparseable_b']}). "
             f"95% CIs: percentile bootstrap, {report['bootstrap']['resamples']} resamples, seed {report['bootstrap']['seed']}.",
             ""]
    if report["kind"] == "pairwise":
        lines += ["| group | n | accuracy (ties) | 95% CI | n w/o ties | accuracy (w/o ties) | 95% CI | kappa | 95% CI |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows = [("overall", report["agreement"])] if report["agreement"] else []
        rows += [(f"category {k}", v) for k, v in report["by_category"].items()]
        rows += [(f"turn {k}", v) for k, v in report["by_turn"].items()] if len(report["by_turn"]) > 1 else []
        for name, row in rows:
            lines.append(f"| {name} | {row['n']} | {_fmt(row['accuracy'])} | {_ci(row['accuracy_ci'])} | "
                         f"{row['n_without_ties']} | {_fmt(row['accuracy_without_ties'])} | "
                         f"{_ci(row['accuracy_without_ties_ci'])} | {_fmt(row['kappa'])} | {_ci(row['kappa_ci'])} |")
        if report["agreement"]:
            lines += ["", "Confusion (rows: a, columns: b):", "", "| a \\ b | " + " | ".join(report["labels"]) + " |",
                      "|---|" + "---|" * len(report["labels"])]
            for label, row in zip(report["labels"], report["agreement"]["confusion"]):
                lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        lines += ["", "| judge | n | unparseable | A | B | tie | win rate of A | position consistency | "
                      "prefers first shown | prefers longer | 95% CI |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for side in ("a", "b"):
            bias = report["judges"][side]
            position = bias["position_consistency"] or {}
            length = bias["length_bias"] or {}
            lines.append(f"| {side} | {bias['n']} | {bias['unparseable']} | {_fmt(bias['shares']['A'])} | "
                         f"{_fmt(bias['shares']['B'])} | {_fmt(bias['shares']['tie'])} | {_fmt(bias['win_rate_a'])} | "
                         f"{_fmt(position.get('consistent'))} (n={position.get('n', 0)}) | "
                         f"{_fmt(position.get('prefers_first_shown'))} | {_fmt(length.get('prefers_longer'))} "
                         f"(n={length.get('n', 0)}) | {_ci(length.get('ci', [None, None]))} |")
        buckets = {side: report["judges"][side].get("length_buckets") for side in ("a", "b")}
        if any(buckets.values()):
            lines += ["", "Win rate of A by length difference len(A) - len(B) (characters; tie = 0.5):", "",
                      "| len(A) - len(B) | a: n | a: win rate of A | b: n | b: win rate of A |", "|---|---|---|---|---|"]
            for index, (_, _, name) in enumerate(LENGTH_BUCKETS):
                cells = []
                for side in ("a", "b"):
                    row = (buckets[side] or [{}] * len(LENGTH_BUCKETS))[index]
                    cells += [str(row.get("n", 0)), _fmt(row.get("win_rate_a"))]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        lines += ["| group | n | Spearman | 95% CI | Kendall | mean a | mean b |", "|---|---|---|---|---|---|---|"]
        rows = [("overall", report["agreement"])] + [(f"category {k}", v) for k, v in report["by_category"].items()]
        rows += [(f"turn {k}", v) for k, v in report["by_turn"].items()] if len(report["by_turn"]) > 1 else []
        for name, row in rows:
            lines.append(f"| {name} | {row['n']} | {_fmt(row['spearman'])} | {_ci(row['spearman_ci'])} | "
                         f"{_fmt(row['kendall'])} | {_fmt(row['mean_a'])} | {_fmt(row['mean_b'])} |")
    for name in report.get("plots", []):
        lines += ["", f"![{name}]({name})"]
    return "\n".join(lines) + "\n"


def _mode_rows(kind: str) -> list[tuple[str, Any]]:
    """(row name, report -> cell text) of the side-by-side table of verdict modes."""
    def bias(report: dict[str, Any]) -> dict[str, Any]:
        return report["judges"]["b"]

    def ci_cell(row: dict[str, Any] | None, value: str, interval: str) -> str:
        return f"{_fmt(row[value])} {_ci(row[interval])}" if row else "n/a"

    counts = [("matched", lambda r: str(r["counts"]["matched"])), ("compared", lambda r: str(r["counts"]["compared"])),
              ("unparseable", lambda r: str(r["counts"]["unparseable_b"]))]
    if kind != "pairwise":
        return counts + [
            ("Spearman [95% CI]", lambda r: ci_cell(r["agreement"], "spearman", "spearman_ci")),
            ("Kendall", lambda r: _fmt(r["agreement"]["kendall"])),
            ("mean score", lambda r: _fmt(r["agreement"]["mean_b"]))]
    return counts + [
        ("accuracy (ties) [95% CI]", lambda r: ci_cell(r["agreement"], "accuracy", "accuracy_ci")),
        ("accuracy (w/o ties) [95% CI]",
         lambda r: ci_cell(r["agreement"], "accuracy_without_ties", "accuracy_without_ties_ci")),
        ("kappa [95% CI]", lambda r: ci_cell(r["agreement"], "kappa", "kappa_ci")),
        ("shares A / B / tie", lambda r: " / ".join(_fmt(bias(r)["shares"][k]) for k in ("A", "B", "tie"))),
        ("verdict produced, order AB / BA",
         lambda r: " / ".join(_fmt((bias(r)["verdict_per_order"] or {}).get(k)) for k in ("AB", "BA"))),
        ("position consistency", lambda r: f"{_fmt((bias(r)['position_consistency'] or {}).get('consistent'))} "
                                           f"(n={(bias(r)['position_consistency'] or {}).get('n', 0)})"),
        ("prefers first shown", lambda r: _fmt((bias(r)["position_consistency"] or {}).get("prefers_first_shown"))),
        ("prefers longer [95% CI]", lambda r: f"{_fmt((bias(r)['length_bias'] or {}).get('prefers_longer'))} "
                                              f"{_ci((bias(r)['length_bias'] or {}).get('ci', [None, None]))}")]


def render_modes_markdown(report: dict[str, Any]) -> str:
    """The verdict modes side by side, then each mode's full report one heading level down."""
    modes = report["modes"]
    lines = [f"# Judge agreement by verdict mode: {report['b']['path']} vs {report['a']['path']}", "",
             f"Reference (a): `{report['a']['path']}` ({report['a']['layout']})", "",
             "| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for name, cell in _mode_rows(report["kind"]):
        lines.append(f"| {name} | " + " | ".join(cell(report["by_mode"][mode]) for mode in modes) + " |")
    for mode in modes:
        part = dict(report["by_mode"][mode], bootstrap=report["bootstrap"])
        section = render_markdown(part).replace("# Judge agreement:", f"## Mode {mode}:", 1)
        lines += ["", section.rstrip("\n")]
    return "\n".join(lines) + "\n"


#: Length-difference buckets (characters, len_a - len_b) of the length-bias plot and `length_buckets`.
LENGTH_BUCKETS = ((-math.inf, -500, "< -500"), (-500, -100, "-500..-100"), (-100, 100, "-100..100"),
                  (100, 500, "100..500"), (500, math.inf, "> 500"))


def length_buckets(records: Sequence[VerdictRecord]) -> list[dict[str, Any]]:
    """Win rate of side A (A = 1, tie = 0.5, B = 0) by len_a - len_b, over records with a verdict and lengths."""
    rows = []
    for low, high, name in LENGTH_BUCKETS:
        winners = [r.winner for r in records if r.winner is not None and r.detail.get("len_a") is not None
                   and r.detail.get("len_b") is not None and low <= r.detail["len_a"] - r.detail["len_b"] < high]
        rows.append({"bucket": name, "n": len(winners), "win_rate_a": stats.win_rate(winners) if winners else math.nan})
    return rows


def write_plots(report: dict[str, Any], output_dir: Path, prefix: str = "") -> list[str]:
    """One PNG (matplotlib, Agg), file name starting with `prefix`. Pairwise: `agreement.png`, four panels: the
    confusion matrix, position consistency of both judges, the length-bias plot (win rate of A by length
    difference, both judges) and agreement per category with 95% CIs. Grades: `scores.png`, the score scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report["kind"] == "pairwise" and report["agreement"]:
        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        _confusion_panel(axes[0][0], report)
        _position_panel(axes[0][1], report)
        _length_panel(axes[1][0], report)
        _category_panel(axes[1][1], report)
        fig.suptitle(f"b = {report['b']['path']}  vs  a (reference) = {report['a']['path']}", fontsize=9)
        fig.tight_layout()
        name = f"{prefix}agreement.png"
        fig.savefig(output_dir / name, dpi=100)
        plt.close(fig)
        return [name]
    if report["kind"] == "grade" and report["scores"]:
        scores = np.array(report["scores"], dtype=float)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(scores[:, 0], scores[:, 1], s=8, alpha=0.5)
        ax.set_xlabel("a (reference)")
        ax.set_ylabel("b")
        ax.set_title(f"Scores, Spearman {_fmt(report['agreement']['spearman'])}")
        fig.tight_layout()
        name = f"{prefix}scores.png"
        fig.savefig(output_dir / name, dpi=100)
        plt.close(fig)
        return [name]
    return []


def _confusion_panel(ax: Any, report: dict[str, Any]) -> None:
    confusion = np.array(report["agreement"]["confusion"])
    labels = report["labels"]
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("b")
    ax.set_ylabel("a (reference)")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    overall = report["agreement"]
    ax.set_title(f"Verdicts: accuracy {_fmt(overall['accuracy'])}, w/o ties {_fmt(overall['accuracy_without_ties'])}, "
                 f"kappa {_fmt(overall['kappa'])} (n={overall['n']})", fontsize=10)


def _position_panel(ax: Any, report: dict[str, Any]) -> None:
    """Share of pairs whose two presentation orders agree / prefer the first shown / the second shown, per judge."""
    kinds = [("consistent", "orders agree"), ("prefers_first_shown", "prefers first shown"),
             ("prefers_second_shown", "prefers second shown")]
    sides = [(side, color, report["judges"][side]["position_consistency"])
             for side, color in (("a", "#9a9a9a"), ("b", "#4a7ab5"))]
    sides = [(side, color, position) for side, color, position in sides if position and position.get("n")]
    width = 0.38 if len(sides) > 1 else 0.6
    for index, (side, color, position) in enumerate(sides):
        offset = (index - (len(sides) - 1) / 2) * width
        values = [position.get(key, math.nan) for key, _ in kinds]
        bars = ax.bar(np.arange(len(kinds)) + offset, values, width, color=color, label=f"{side} (n={position['n']})")
        ax.bar_label(bars, labels=[_fmt(v, 2) for v in values], fontsize=8)
    plotted = bool(sides)
    ax.set_xticks(range(len(kinds)), [label for _, label in kinds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of pairs judged in both orders")
    ax.set_title("Position consistency")
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no per-order verdicts recorded", ha="center", va="center", transform=ax.transAxes)


def _length_panel(ax: Any, report: dict[str, Any]) -> None:
    """Win rate of A by len_a - len_b: a judge without length bias is flat where the reference is."""
    plotted = False
    for side, color in (("a", "#9a9a9a"), ("b", "#4a7ab5")):
        buckets = report["judges"][side].get("length_buckets") or []
        if not any(b["n"] for b in buckets):
            continue
        bias = report["judges"][side]["length_bias"] or {}
        ax.plot([b["bucket"] for b in buckets], [b["win_rate_a"] for b in buckets], marker="o", color=color,
                label=f"{side}: prefers longer {_fmt(bias.get('prefers_longer'))}")
        for b in buckets:
            if b["n"]:
                ax.annotate(f"n={b['n']}", (b["bucket"], b["win_rate_a"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7, color=color)
        plotted = True
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylim(0, 1)
    ax.set_xlabel("len(A) - len(B), characters")
    ax.set_ylabel("win rate of A (tie = 0.5)")
    ax.set_title("Length bias: win rate by length difference")
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no answer lengths recorded", ha="center", va="center", transform=ax.transAxes)


def _category_panel(ax: Any, report: dict[str, Any]) -> None:
    groups = {"overall": report["agreement"], **report["by_category"]}
    names = list(groups)
    values = [groups[n]["accuracy"] for n in names]
    low = [max(0.0, groups[n]["accuracy"] - groups[n]["accuracy_ci"][0]) for n in names]
    high = [max(0.0, groups[n]["accuracy_ci"][1] - groups[n]["accuracy"]) for n in names]
    y = np.arange(len(names))
    bars = ax.barh(y, values, xerr=[low, high], capsize=3, color=["#e0913a"] + ["#4a7ab5"] * (len(names) - 1))
    ax.bar_label(bars, labels=[_fmt(v, 2) for v in values], fontsize=8, padding=3)
    ax.set_yticks(y, [f"{n} (n={groups[n]['n']})" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with a (ties count), 95% bootstrap CI")
    ax.set_title("Agreement per category")
