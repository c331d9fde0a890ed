"""`turnwise judge pairs|grade|agree|bon`: parse, load config, call judge/, print."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from chat.cli import add_group
from chat.config import UNSET, add_dataclass_arguments, build_config, config_from_args, load_yaml
from chat.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    from judge.bon import BonConfig
    from judge.config import JudgeConfig

    group = add_group(subparsers, "judge", "LLM and RM judges, agreement statistics, multi-turn best-of-N")

    pairs = group.add_parser("pairs", help="judge preference pairs (A = chosen, B = rejected) into a resumable JSONL",
                             description="Judge every pair of --input with a registered judge (turnwise list judges); "
                                         "LLM judges see both orders. Options from --config YAML or --field flags.")
    _add_job_arguments(pairs)
    add_dataclass_arguments(pairs, JudgeConfig)
    pairs.set_defaults(func=run_pairs)

    grade = group.add_parser("grade", help="grade conversations 1-10 (LLM) or by reward (RM) into a resumable JSONL",
                             description="Grade every conversation of --input (both sides of preference pairs). "
                                         "Multi-turn dialogues: every turn graded, score = minimum (MT-Bench-101).")
    _add_job_arguments(grade)
    add_dataclass_arguments(grade, JudgeConfig)
    grade.set_defaults(func=run_grade, judge_default="llm-grade")

    agree = group.add_parser("agree", help="agreement of two judges' verdicts or grades: JSON, Markdown, PNG",
                             description="Match two judgment files by id and turn; report accuracy with and without "
                                         "ties, Cohen's kappa, bootstrap 95%% CIs (or Spearman / Kendall for grades), "
                                         "position consistency, length bias, per category and per turn.")
    agree.add_argument("--a", required=True, help="reference verdicts: turnwise JSONL, FastChat MT-Bench judgments, "
                                                  "AlpacaEval annotations, or a preference dataset (chosen wins)")
    agree.add_argument("--b", required=True, help="verdicts to compare with --a (same formats)")
    agree.add_argument("-o", "--output", required=True, type=Path, help="report directory")
    agree.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    agree.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    agree.set_defaults(func=run_agree)

    bon = group.add_parser("bon", help="multi-turn best-of-N: RM A vs RM B, judged pairwise, win rate per N",
                           description="MUSIC's multi-turn best-of-N evaluation. --policy, --user-sim and the judge's "
                                       "backend_role name entries of the config's `backends:` (default: the embedded "
                                       "local model for all three). Config YAML: `backends:`, `judge_options:` "
                                       "(judge fields) and best-of-N fields.")
    bon.add_argument("--rm-a", required=True, help="reward model A (the one whose win rate is reported)")
    bon.add_argument("--rm-b", required=True, help="reward model B (baseline)")
    bon.add_argument("--policy", default="policy", help="backend role that samples candidates (default: policy)")
    bon.add_argument("--user-sim", default="user_sim", help="backend role of the simulated user (default: user_sim)")
    bon.add_argument("--judge", default="llm-pairwise", help="registered judge (default: llm-pairwise)")
    bon.add_argument("--prompts", required=True, help="conversations whose first user turn seeds each dialogue")
    bon.add_argument("--format", help="reader for --prompts (auto-detected when unset)")
    bon.add_argument("-o", "--output", required=True, type=Path, help="output directory (resumable)")
    bon.add_argument("--device", help="torch device for the reward models")
    bon.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(bon, BonConfig)
    bon.set_defaults(func=run_bon)


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="preference pairs or conversations (file or hub id)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output JSONL (resumes if it exists)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _judge_config(args: argparse.Namespace) -> Any:
    from judge.config import JudgeConfig

    if getattr(args, "judge", UNSET) is UNSET and getattr(args, "judge_default", None):
        config_values = load_yaml(args.config) if args.config else {}
        if "judge" not in config_values:
            args.judge = args.judge_default
    return config_from_args(JudgeConfig, args)


def run_pairs(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.jobs import judge_pairs_job

    summary = asyncio.run(judge_pairs_job(_judge_config(args), args.input, args.output, progress=not args.no_progress))
    print(format_summary(summary))
    return summary.exit_code


def run_grade(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.jobs import grade_job

    summary = asyncio.run(grade_job(_judge_config(args), args.input, args.output, progress=not args.no_progress))
    print(format_summary(summary))
    return summary.exit_code


def run_agree(args: argparse.Namespace) -> int:
    from judge.report import agree

    if args.bootstrap < 1:
        raise ConfigError(f"--bootstrap: expected >= 1, got {args.bootstrap}")
    report = agree(args.a, args.b, args.output, resamples=args.bootstrap, seed=args.seed)
    counts = report["counts"]
    print(f"matched {counts['matched']} records ({counts['compared']} compared; unparseable a "
          f"{counts['unparseable_a']}, b {counts['unparseable_b']}; only in a {counts['only_in_a']}, "
          f"only in b {counts['only_in_b']})")
    overall = report["agreement"]
    if report["kind"] == "pairwise" and overall:
        print(f"accuracy {overall['accuracy']:.3f} [{overall['accuracy_ci'][0]:.3f}, {overall['accuracy_ci'][1]:.3f}], "
              f"without ties {_num(overall['accuracy_without_ties'])} (n={overall['n_without_ties']}), "
              f"kappa {_num(overall['kappa'])} [{_num(overall['kappa_ci'][0])}, {_num(overall['kappa_ci'][1])}]")
    elif report["kind"] == "grade":
        print(f"Spearman {_num(overall['spearman'])}, Kendall {_num(overall['kendall'])} (n={overall['n']})")
    print(f"report -> {args.output / 'report.md'}")
    return 0


def _num(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _bon_config(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(BonConfig, JudgeConfig, backends section) from --config YAML and flags."""
    from judge.bon import BonConfig
    from judge.config import DEFAULT_BACKENDS, JudgeConfig

    values = load_yaml(args.config) if args.config else {}
    source = str(args.config) if args.config else "command line"
    backends = values.pop("backends", None)
    judge_values = values.pop("judge_options", None) or {}
    if not isinstance(judge_values, dict):
        raise ConfigError(f"{source}: judge_options: expected a mapping of judge fields")
    for f in dataclasses.fields(BonConfig):
        value = getattr(args, f.name, UNSET)
        if value is not UNSET:
            values[f.name] = value
    bon_config = build_config(BonConfig, values, source=source)
    bon_config.validate()
    judge_values = {**judge_values, "judge": args.judge}
    if args.device:
        judge_values.setdefault("device", args.device)
    judge_config = build_config(JudgeConfig, judge_values, source=f"{source}: judge_options")
    if backends is None:
        backends = {role: dict(DEFAULT_BACKENDS["judge"]) for role in {args.policy, args.user_sim, judge_config.backend_role}}
    if not isinstance(backends, dict):
        raise ConfigError(f"{source}: backends: expected a mapping of role name -> backend")
    return bon_config, judge_config, backends


def run_bon(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.bon_job import run_bon_job

    bon_config, judge_config, backends = _bon_config(args)
    summary, report = asyncio.run(run_bon_job(
        bon_config, judge_config, backends, rm_a=args.rm_a, rm_b=args.rm_b, policy_role=args.policy,
        user_role=args.user_sim, prompts=args.prompts, prompts_format=args.format, output_dir=args.output,
        device=args.device, progress=not args.no_progress))
    print(format_summary(summary))
    for n, row in report["by_n"].items():
        print(f"N={n}: win rate of A {_num(row['win_rate'])} [{_num(row['ci'][0])}, {_num(row['ci'][1])}] "
              f"({row['wins']} wins, {row['ties']} ties, {row['losses']} losses, {row['unparseable']} unparseable)")
    print(f"report -> {args.output / 'report.md'}")
    return summary.exit_code


