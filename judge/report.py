"""`judge agree`: match two judges' records and write the agreement report (JSON, Markdown, PNG plots)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chat.errors import ConfigError, InputError
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


def pairwise_report(x: JudgmentFile, y: JudgmentFile, *, resamples: int = stats.DEFAULT_RESAMPLES,
                    seed: int = stats.DEFAULT_SEED) -> dict[str, Any]:
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
    with_lengths = [r for r in records if r.winner is not None and r.detail.get("len_a") is not None
                    and r.detail.get("len_b") is not None]
    return {
        "n": len(records), "unparseable": len(records) - len(decided), "shares": shares,
        "win_rate_a": stats.win_rate(decided) if decided else math.nan,
        "position_consistency": stats.position_consistency(
            [r.detail["orders"].get("AB") for r in with_orders], [r.detail["orders"].get("BA") for r in with_orders])
        if with_orders else None,
        "length_bias": stats.length_bias([r.winner for r in with_lengths], [r.detail["len_a"] for r in with_lengths],
                                         [r.detail["len_b"] for r in with_lengths]) if with_lengths else None,
    }


def grade_report(x: JudgmentFile, y: JudgmentFile, *, resamples: int = stats.DEFAULT_RESAMPLES,
                 seed: int = stats.DEFAULT_SEED) -> dict[str, Any]:
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


def agree(path_a: str | Path, path_b: str | Path, output_dir: str | Path, *,
          resamples: int = stats.DEFAULT_RESAMPLES, seed: int = stats.DEFAULT_SEED, plots: bool = True) -> dict[str, Any]:
    """Read two judgment files, compute the report, write report.json, report.md and the PNG plots."""
    x, y = read_judgments(path_a), read_judgments(path_b)
    report = (pairwise_report if x.kind == "pairwise" else grade_report)(x, y, resamples=resamples, seed=seed)
    report["bootstrap"] = {"resamples": resamples, "seed": seed, "level": 0.95}
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if plots:
            report["plots"] = write_plots(report, output_dir)
        (output_dir / "report.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n", encoding="utf-8")
        (output_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {output_dir}: {exc.strerror or exc}") from None
    return report


def _json_safe(value: Any) -> Any:
    """NaN -> null so the report is strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ----------------------------------------------------------------------------- rendering

def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(interval: Sequence[float]) -> str:
    return f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def render_markdown(report: dict[str, Any]) -> str:
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


def write_plots(report: dict[str, Any], output_dir: Path) -> list[str]:
    """PNG plots (matplotlib, Agg): agreement with CI per category, and the confusion matrix / score scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if report["kind"] == "pairwise" and report["agreement"]:
        groups = {"overall": report["agreement"], **report["by_category"]}
        names = list(groups)
        values = [groups[n]["accuracy"] for n in names]
        low = [groups[n]["accuracy"] - groups[n]["accuracy_ci"][0] for n in names]
        high = [groups[n]["accuracy_ci"][1] - groups[n]["accuracy"] for n in names]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(names) + 2), 4))
        ax.bar(range(len(names)), values, yerr=[low, high], capsize=3, color="#4a7ab5")
        ax.set_xticks(range(len(names)), [f"{n}\n(n={groups[n]['n']})" for n in names], rotation=45, ha="right",
                      fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("agreement (with ties)")
        ax.set_title("Agreement with the reference judge, 95% bootstrap CI")
        fig.tight_layout()
        fig.savefig(output_dir / "agreement_by_category.png", dpi=100)
        plt.close(fig)
        written.append("agreement_by_category.png")

        confusion = np.array(report["agreement"]["confusion"])
        fig, ax = plt.subplots(figsize=(4, 3.6))
        ax.imshow(confusion, cmap="Blues")
        labels = report["labels"]
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("b")
        ax.set_ylabel("a (reference)")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black")
        ax.set_title("Verdict confusion matrix")
        fig.tight_layout()
        fig.savefig(output_dir / "confusion.png", dpi=100)
        plt.close(fig)
        written.append("confusion.png")
    elif report["kind"] == "grade" and report["scores"]:
        scores = np.array(report["scores"], dtype=float)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(scores[:, 0], scores[:, 1], s=8, alpha=0.5)
        ax.set_xlabel("a (reference)")
        ax.set_ylabel("b")
        ax.set_title(f"Scores, Spearman {_fmt(report['agreement']['spearman'])}")
        fig.tight_layout()
        fig.savefig(output_dir / "scores.png", dpi=100)
        plt.close(fig)
        written.append("scores.png")
    return written
