"""`turnwise data inspect|convert`: describe a dataset, or convert it to canonical JSONL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from chat.commands import add_group
from chat.formats import FORMATS, ON_ERROR, read_records, write_jsonl
from chat.formats.reading import KIND_NAMES
from chat.formats.summary import summarize_dataset

SOURCE_HELP = ("local file (.json list or object, .jsonl, .jsonl.gz, .json.gz, .parquet, .txt) "
               "or a hub dataset id such as Anthropic/hh-rlhf")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "data", "Inspect datasets and convert them to canonical JSONL")

    inspect = group.add_parser("inspect", help="rows, detected format, turns histogram, lengths, invalid rows",
                               description="Describe a dataset. Invalid rows are counted (first few quoted), never fatal.")
    inspect.add_argument("path", metavar="PATH", help=SOURCE_HELP)
    inspect.add_argument("--format", choices=FORMATS.names(), help="source format (default: detected from the first row)")
    inspect.add_argument("--limit", type=_positive_int, metavar="N", help="inspect only the first N rows")
    inspect.add_argument("--split", default="train", help="split of a hub dataset (default: train)")
    inspect.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    inspect.set_defaults(func=inspect_command)

    convert = group.add_parser(
        "convert", help="write canonical JSONL (TRL conversational pairs / conversations / documents)",
        description="Convert a dataset to canonical JSONL. With --on-error fail (default) the first invalid row "
                    "stops with `PATH:LINE: field: reason` and nothing is written; with skip, invalid rows go to "
                    "OUT.rejects.jsonl.")
    convert.add_argument("path", metavar="PATH", help=SOURCE_HELP)
    convert.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl (or .jsonl.gz)")
    convert.add_argument("--format", choices=FORMATS.names(), help="source format (default: detected from the first row)")
    convert.add_argument("--on-error", choices=ON_ERROR, default="fail", help="fail (default) or skip invalid rows")
    convert.add_argument("--split", default="train", help="split of a hub dataset (default: train)")
    convert.set_defaults(func=convert_command)


def inspect_command(args: argparse.Namespace) -> int:
    summary = summarize_dataset(args.path, args.format, limit=args.limit, split=args.split)
    print(json.dumps(summary, ensure_ascii=False, indent=2) if args.json else render_summary(summary))
    return 0


def convert_command(args: argparse.Namespace) -> int:
    rejects: list[dict[str, Any]] = []
    records = read_records(args.path, args.format, on_error=args.on_error, rejects=rejects, split=args.split)
    written = write_jsonl(records, args.output)
    if args.on_error == "skip":
        rejects_path = Path(f"{args.output}.rejects.jsonl")
        write_jsonl(rejects, rejects_path)
        print(f"converted {written} rows, rejected {len(rejects)} -> {rejects_path}")
    else:
        print(f"converted {written} rows -> {args.output}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().lstrip("-").isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def render_summary(summary: dict[str, Any]) -> str:
    """The human-readable form of `summarize_dataset`'s result."""
    detected = " (detected)" if summary["format_detected"] else ""
    lines = [
        f"source:   {summary['source']}",
        f"format:   {summary['format']}{detected}",
        f"kind:     {KIND_NAMES.get(summary['kind'], summary['kind'])}",
        f"rows:     {summary['rows']} ({summary['rows'] - summary['invalid_rows']} valid, {summary['invalid_rows']} invalid)",
        f"records:  {summary['records']}",
    ]
    if summary["turns"]:
        side = " (chosen side)" if summary["kind"] == "pair" else ""
        lines.append(f"user turns per conversation{side}:")
        peak = max(summary["turns"].values())
        for turns, count in summary["turns"].items():
            lines.append(f"  {turns:>3}: {count:>6}  {'#' * max(1, round(40 * count / peak))}")
    rows = [(f"{role} {unit}", stats[unit]) for role, stats in summary["lengths"].items() for unit in ("chars", "words")]
    if summary["kind"] == "pair":
        rows += [(f"{side} response {unit}", summary[f"{side}_response"][unit])
                 for side in ("chosen", "rejected") for unit in ("chars", "words")]
    if rows:
        lines.append(f"{'lengths':<26}{'min':>9}{'mean':>11}{'median':>11}{'max':>9}")
        for label, stats in rows:
            lines.append(f"  {label:<24}{stats['min']:>9}{stats['mean']:>11.1f}{stats['median']:>11.1f}{stats['max']:>9}")
    if summary["kind"] == "pair":
        lines.append(f"pairs differing only in the final turn: {summary['final_turn_only']} / {summary['records']} "
                     f"({100 * summary['final_turn_only_share']:.1f}%)")
        if summary["ties"]:
            lines.append(f"ties (kept, meta.tie = true): {summary['ties']}")
    lines.append(f"invalid rows: {summary['invalid_rows']}")
    lines += [f"  {example}" for example in summary["invalid_examples"]]
    return "\n".join(lines)
