"""`turnwise judge pairs|grade|agree|bon`: parse, load config, call judge/, print."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from chat.commands import add_group
from chat.config import UNSET, add_dataclass_arguments, build_config, config_from_args, load_yaml
from chat.errors import ConfigError
from chat.runner.fingerprint import add_overwrite_argument
from chat.stats import DEFAULT_RESAMPLES, DEFAULT_SEED


def register(subparsers: argparse._SubParsersAction) -> None:
    from judge.bon import BonConfig
    from judge.config import JudgeConfig

    group = add_group(subparsers, "judge", "LLM and RM judges, agreement statistics, multi-turn best-of-N")

    pairs = group.add_parser("pairs", help="judge preference pairs (A = chosen, B = rejected) into a resumable JSONL",
                             description="Judge every pair of --input with a registered judge (turnwise list judges); "
                                         "LLM judges see both orders. Options from --config YAML or --field flags.")
    _add_job_arguments(pairs)
    add_dataclass_arguments(pairs, JudgeConfig)
    _add_verdict_mode_alias(pairs)
    pairs.set_defaults(func=run_pairs)

    grade = group.add_parser("grade", help="grade conversations 1-10 (LLM) or by reward (RM) into a resumable JSONL",
                             description="Grade every conversation of --input (both sides of preference pairs). "
                                         "Multi-turn dialogues: every turn graded, score = minimum (MT-Bench-101).")
    _add_job_arguments(grade)
    add_dataclass_arguments(grade, JudgeConfig)
    _add_verdict_mode_alias(grade)
    grade.set_defaults(func=run_grade, judge_default="llm-grade")

    agree = group.add_parser("agree", help="agreement of two judges' verdicts or grades: JSON, Markdown, PNG",
                             description="Match two judgment files by id and turn; report accuracy with and without "
                                         "ties, Cohen's kappa, bootstrap 95%% CIs (or Spearman / Kendall for grades), "
                                         "position consistency, length bias, per category and per turn.")
    agree.add_argument("--a", required=True, help="reference verdicts: turnwise JSONL, FastChat MT-Bench judgments, "
                                                  "AlpacaEval annotations, or a preference dataset (chosen wins)")
    agree.add_argument("--b", required=True, nargs="+", help="verdicts to compare with --a (same formats); records "
                                                             "of both verdict modes (in one file or several) are "
                                                             "reported per mode, side by side")
    agree.add_argument("-o", "--output", required=True, type=Path, help="report directory")
    agree.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES,
                       help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    agree.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"bootstrap seed (default {DEFAULT_SEED})")
    agree.set_defaults(func=run_agree)

    winrate = group.add_parser(
        "winrate", help="AlpacaEval win rate and length-controlled win rate of model outputs vs reference outputs",
        description="Win rate of --model-outputs against --reference-outputs (AlpacaEval JSON {instruction, output, "
                    "generator} or any conversation format, multi-turn included), judged by the configured judge in "
                    "both orders, or from existing AlpacaEval --annotations. Writes leaderboard.csv (AlpacaEval's "
                    "columns), report.json, report.md, winrate.png and, when judging, annotations.jsonl (resumable).")
    winrate.add_argument("--model-outputs", help="outputs of the evaluated model")
    winrate.add_argument("--reference-outputs", help="outputs of the baseline (AlpacaEval's output_1)")
    winrate.add_argument("--annotations", nargs="+", help="AlpacaEval annotations instead of judging (one or more "
                                                          "files; one leaderboard row per evaluated generator)")
    winrate.add_argument("--model", help="with --annotations: the evaluated generator (default: generator_2)")
    winrate.add_argument("--instruction-difficulty", help="CSV (index or instruction, difficulty; AlpacaEval's "
                                                          "instruction_difficulty.csv) or JSON: adds the GLM's "
                                                          "instruction-difficulty term")
    winrate.add_argument("--mode", default="community", help="leaderboard `mode` column (default: community)")
    winrate.add_argument("--lc-bootstrap", type=int, default=200, help="bootstrap refits for the LC standard error")
    winrate.add_argument("--lc-seed", type=int, default=0, help="seed of the LC bootstrap (default 0)")
    winrate.add_argument("-o", "--output", required=True, type=Path, help="report directory")
    winrate.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite_argument(winrate)
    add_dataclass_arguments(winrate, JudgeConfig)
    _add_verdict_mode_alias(winrate)
    winrate.set_defaults(func=run_winrate)

    mt_bench = group.add_parser(
        "mt-bench", help="FastChat MT-Bench judging (pairwise-baseline or single) into FastChat's model_judgment JSONL",
        description="FastChat llm_judge gen_judgment: turn 1 with --prompt-name, turn 2 with its -multi-turn "
                    "sibling, math/reasoning/coding with the math prompt and --reference-answers. Output rows have "
                    "FastChat's fields, so show_result.py reads them.")
    mt_bench.add_argument("--mode", default="pairwise-baseline", choices=("pairwise-baseline", "single"),
                          help="pairwise-baseline (each answer file vs --baseline) or single (1-10 grades)")
    mt_bench.add_argument("--answers", required=True, nargs="+",
                          help="FastChat answer files (model_answer/*.jsonl; question.jsonl beside or one level up)")
    mt_bench.add_argument("--baseline", help="the baseline model's answer file (pairwise-baseline)")
    mt_bench.add_argument("--reference-answers", help="reference answers for math/reasoning/coding "
                                                      "(FastChat reference_answer/gpt-4.jsonl)")
    mt_bench.add_argument("--math-prompt-name", help="prompt for math/reasoning/coding (default pair-math-v1 / "
                                                     "single-math-v1 when the file has it)")
    mt_bench.add_argument("--judge-model", help="judge name recorded in `judge` (default: the backend's name)")
    mt_bench.add_argument("-o", "--output", required=True, type=Path,
                          help="judgment JSONL, e.g. model_judgment/gpt-4_pair.jsonl (resumes if it exists)")
    mt_bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(mt_bench, JudgeConfig)
    _add_verdict_mode_alias(mt_bench)
    mt_bench.set_defaults(func=run_mt_bench)

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


def _add_verdict_mode_alias(parser: argparse.ArgumentParser) -> None:
    """`--verdict-mode` as well as the field flag `--verdict_mode` (error messages name the hyphenated one)."""
    from judge.config import VERDICT_MODES

    parser.add_argument("--verdict-mode", dest="verdict_mode", default=UNSET, choices=VERDICT_MODES,
                        help=argparse.SUPPRESS)
    parser.add_argument("--prompt-file", dest="prompt_file", default=UNSET, help=argparse.SUPPRESS)
    parser.add_argument("--prompt-name", dest="prompt_name", default=UNSET, help=argparse.SUPPRESS)


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="preference pairs or conversations (file or hub id)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output JSONL (resumes if it exists)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite_argument(parser)


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

    summary = asyncio.run(judge_pairs_job(_judge_config(args), args.input, args.output, progress=not args.no_progress,
                                          overwrite=args.overwrite))
    print(format_summary(summary))
    return summary.exit_code


def run_grade(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.jobs import grade_job

    summary = asyncio.run(grade_job(_judge_config(args), args.input, args.output, progress=not args.no_progress,
                                    overwrite=args.overwrite))
    print(format_summary(summary))
    return summary.exit_code


def run_agree(args: argparse.Namespace) -> int:
    from judge.report import agree

    if args.bootstrap < 1:
        raise ConfigError(f"--bootstrap: expected >= 1, got {args.bootstrap}")
    report = agree(args.a, args.b, args.output, resamples=args.bootstrap, seed=args.seed)
    for mode, part in report["by_mode"].items() if "by_mode" in report else [(None, report)]:
        _print_agreement(part, f"[{mode}] " if mode else "")
    print(f"report -> {args.output / 'report.md'}")
    return 0


def _print_agreement(report: dict[str, Any], prefix: str) -> None:
    counts = report["counts"]
    print(f"{prefix}matched {counts['matched']} records ({counts['compared']} compared; unparseable a "
          f"{counts['unparseable_a']}, b {counts['unparseable_b']}; only in a {counts['only_in_a']}, "
          f"only in b {counts['only_in_b']})")
    overall = report["agreement"]
    if report["kind"] == "pairwise" and overall:
        print(f"{prefix}accuracy {overall['accuracy']:.3f} [{overall['accuracy_ci'][0]:.3f}, "
              f"{overall['accuracy_ci'][1]:.3f}], without ties {_num(overall['accuracy_without_ties'])} "
              f"(n={overall['n_without_ties']}), kappa {_num(overall['kappa'])} [{_num(overall['kappa_ci'][0])}, "
              f"{_num(overall['kappa_ci'][1])}]")
    elif report["kind"] == "grade":
        print(f"{prefix}Spearman {_num(overall['spearman'])}, Kendall {_num(overall['kendall'])} (n={overall['n']})")


def run_mt_bench(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.mt_bench_job import mt_bench_job

    config = _judge_config(args)
    summary = asyncio.run(mt_bench_job(config, mode=args.mode, answer_files=args.answers, baseline_file=args.baseline,
                                       reference_file=args.reference_answers, output=args.output,
                                       prompt_name=config.prompt_name, math_prompt_name=args.math_prompt_name,
                                       judge_model=args.judge_model, progress=not args.no_progress))
    print(format_summary(summary))
    return summary.exit_code


def run_winrate(args: argparse.Namespace) -> int:
    from chat.runner import format_summary
    from judge.winrate_job import judge_outputs_job, read_annotations, read_difficulty, write_report

    judging = args.model_outputs is not None or args.reference_outputs is not None
    if judging == bool(args.annotations):
        raise ConfigError("give either --model-outputs and --reference-outputs (judge them) or --annotations")
    if judging and (args.model_outputs is None or args.reference_outputs is None):
        raise ConfigError("--model-outputs and --reference-outputs go together")
    if args.lc_bootstrap < 0:
        raise ConfigError(f"--lc-bootstrap: expected >= 0, got {args.lc_bootstrap}")
    exit_code = 0
    if judging:
        annotations_path = args.output / "annotations.jsonl"
        args.output.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(judge_outputs_job(_judge_config(args), args.model_outputs, args.reference_outputs,
                                                annotations_path, progress=not args.no_progress,
                                                overwrite=args.overwrite))
        print(format_summary(summary))
        exit_code = summary.exit_code
        annotations = read_annotations(annotations_path)
    else:
        annotations = [a for path in args.annotations for a in read_annotations(path, args.model)]
    difficulty = read_difficulty(args.instruction_difficulty, annotations) if args.instruction_difficulty else None
    report = write_report(annotations, args.output, mode=args.mode, difficulty=difficulty,
                          resamples=args.lc_bootstrap, seed=args.lc_seed)
    for name, part in report["models"].items():
        row, fit = part["leaderboard"], part["length_controlled"]
        print(f"{name} vs {row['baseline'] or 'baseline'}: win rate {_num2(row['win_rate'])} "
              f"(SE {_num2(row['standard_error'])}), LC win rate {_num2(row['length_controlled_winrate'])} "
              f"(SE {_num2(row['lc_standard_error'])}), n={row['n_total']} ({row['n_unparseable']} unparseable); "
              "GLM " + ", ".join(f"{k} {v:.3f}" for k, v in fit["coefficients"].items()))
    print(f"leaderboard -> {args.output / 'leaderboard.csv'}; report -> {args.output / 'report.md'}")
    return exit_code


def _num2(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


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


