"""`turnwise generate review-instruct|sedi|stats`: command-line entry points (one `add_*` per subcommand)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chat.cli import add_group
from chat.config import add_dataclass_arguments, config_from_args
from chat.runner import add_overwrite_argument, format_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "generate", "RM-guided data generation: Review-Instruct, SeDi-Instruct, CoEvol, MIMG, stats")
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(group)


def _add_io(parser: argparse.ArgumentParser, seeds_help: str) -> None:
    parser.add_argument("--seeds", required=True, metavar="D", help=seeds_help)
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl")
    add_overwrite_argument(parser)


def add_review_instruct(group: argparse._SubParsersAction) -> None:
    from generate.config import ReviewInstructConfig

    parser = group.add_parser(
        "review-instruct", help="multi-turn conversations by Candidate / Reviewers / Chairman (Review-Instruct)",
        description="Review-Instruct (arXiv 2505.11010, docs/methods.md). Kept conversations go to OUT (canonical "
                    "conversations; reviews, votes, decisions, RM scores, usage in meta); every seed's outcome goes "
                    "to OUT.seeds.jsonl, so rerunning the same command resumes.")
    _add_io(parser, "seed questions: Alpaca, Self-Instruct seed tasks, MT-Bench questions, ShareGPT, plain text "
                    "(one question per line)")
    parser.add_argument("--sharegpt", type=Path, metavar="PATH", help="also export the kept conversations as ShareGPT")
    add_dataclass_arguments(parser, ReviewInstructConfig)
    parser.set_defaults(func=review_instruct_command)


def add_sedi(group: argparse._SubParsersAction) -> None:
    from generate.config import SediConfig

    parser = group.add_parser(
        "sedi", help="instruction generation: SeDi-Instruct or the Self-Instruct baseline (--mode self-instruct)",
        description="SeDi-Instruct (arXiv 2502.04774, docs/methods.md) and its Self-Instruct baseline. Kept pairs "
                    "go to OUT (canonical conversations with provenance in meta); OUT.iterations.jsonl logs each "
                    "iteration, so rerunning the same command resumes.")
    _add_io(parser, "seed tasks: Self-Instruct seed tasks, Alpaca, any conversation file")
    parser.add_argument("--alpaca", type=Path, metavar="PATH", help="also export the kept pairs as Alpaca rows")
    add_dataclass_arguments(parser, SediConfig)
    parser.set_defaults(func=sedi_command)


def add_stats(group: argparse._SubParsersAction) -> None:
    from generate.rouge import MAX_ROUGE_PAIRS

    parser = group.add_parser(
        "stats", help="diversity and difficulty metrics of generated data, with PNG plots",
        description="Distinct-n, mean pairwise ROUGE-L (sampled pairs when there are many), MiniLM embedding "
                    "dispersion, instruction length, turn count, RM score distribution; histograms as PNG.")
    parser.add_argument("path", nargs="+", metavar="OUT", help="generator output file(s) (any conversation format)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG histograms to DIR")
    parser.add_argument("--no-embeddings", action="store_true", help="skip the MiniLM embedding dispersion")
    parser.add_argument("--max-pairs", type=int, default=MAX_ROUGE_PAIRS,
                        help=f"ROUGE-L pairs sampled at most ({MAX_ROUGE_PAIRS})")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=stats_command)


def add_coevol(group: argparse._SubParsersAction) -> None:
    from generate.coevol_config import CoevolConfig

    parser = group.add_parser(
        "coevol", help="refine the responses of instruction data by debate, advice, edit and judgement (CoEvol)",
        description="CoEvol (arXiv 2406.07054, docs/methods.md). One refined conversation per input goes to OUT "
                    "(iterations, suggestions, verdicts, RM scores before/after and usage in meta.coevol); "
                    "OUT.summary.json adds the acceptance rate per iteration and the RM score delta distribution. "
                    "Rerunning the same command resumes.")
    parser.add_argument("--input", required=True, metavar="D",
                        help="instruction data: Alpaca, ShareGPT, canonical conversations (pairs: the chosen side)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl")
    add_overwrite_argument(parser)
    add_dataclass_arguments(parser, CoevolConfig)
    parser.set_defaults(func=coevol_command)


def add_mimg(group: argparse._SubParsersAction) -> None:
    from generate.mimg_config import MimgConfig

    parser = group.add_parser(
        "mimg", help="multi-hop long-context QA generation from documents (MIMG / LongMIT)",
        description="MIMG (arXiv 2409.01893, docs/methods.md). Training records {prompt, answer, hops, source_qa_ids, "
                    "doc_ids, rationale} go to OUT, the single-hop QAs to OUT.qas.jsonl, the merge chains to "
                    "OUT.chains.jsonl, pass rates and the hop distribution to OUT.summary.json. Rerunning the same "
                    "command resumes.")
    parser.add_argument("--docs", required=True, nargs="+", metavar="D",
                        help="documents: {id, content} JSONL (e.g. the LongMIT corpus), .txt files, HotpotQA rows "
                             "(their context paragraphs)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl")
    add_overwrite_argument(parser)
    add_dataclass_arguments(parser, MimgConfig)
    parser.set_defaults(func=mimg_command)


#: Subcommands of `turnwise generate`, in --help order (later generators append theirs).
SUBCOMMANDS = [add_review_instruct, add_sedi, add_coevol, add_mimg, add_stats]


def review_instruct_command(args: argparse.Namespace) -> int:
    from generate.config import ReviewInstructConfig
    from generate.export import export_file
    from generate.review_run import format_generate_summary, run_review_instruct

    result = run_review_instruct(args.seeds, args.output, config_from_args(ReviewInstructConfig, args),
                                 overwrite=args.overwrite)
    print(format_summary(result.summary))
    print(format_generate_summary(result, "conversations"))
    if args.sharegpt:
        print(f"{export_file(args.output, args.sharegpt, 'sharegpt')} conversations -> {args.sharegpt} (ShareGPT)")
    return result.summary.exit_code


def sedi_command(args: argparse.Namespace) -> int:
    from generate.config import SediConfig
    from generate.export import export_file
    from generate.review_run import format_generate_summary
    from generate.sedi import run_sedi

    result = run_sedi(args.seeds, args.output, config_from_args(SediConfig, args), overwrite=args.overwrite)
    print(format_summary(result.summary))
    print(format_generate_summary(result, "instructions"))
    if args.alpaca:
        print(f"{export_file(args.output, args.alpaca, 'alpaca')} pairs -> {args.alpaca} (Alpaca)")
    return result.summary.exit_code


def coevol_command(args: argparse.Namespace) -> int:
    from generate.coevol_config import CoevolConfig
    from generate.coevol_run import coevol_report, format_coevol_report, run_coevol

    result = run_coevol(args.input, args.output, config_from_args(CoevolConfig, args), overwrite=args.overwrite)
    print(format_summary(result.summary))
    print(format_coevol_report(coevol_report(args.output)))
    return result.summary.exit_code


def mimg_command(args: argparse.Namespace) -> int:
    from generate.mimg_config import MimgConfig
    from generate.mimg_run import format_mimg_report, run_mimg

    result = run_mimg(args.docs, args.output, config_from_args(MimgConfig, args), overwrite=args.overwrite)
    print(format_summary(result.single_hop))
    if result.multi_hop is not None:
        print(format_summary(result.multi_hop))
    elif result.single_hop.errors:
        print("multi-hop merges not started: they need every chunk's single-hop QAs; rerun the same command")
    print(format_mimg_report(result.report))
    return result.exit_code


def stats_command(args: argparse.Namespace) -> int:
    from generate.stats import format_stats, stats_for_file

    all_stats = [stats_for_file(path, embeddings=not args.no_embeddings, plots_dir=args.plots,
                                max_pairs=args.max_pairs) for path in args.path]
    if args.json:
        print(json.dumps(all_stats if len(all_stats) > 1 else all_stats[0], indent=2))
    else:
        print("\n\n".join(format_stats(stats) for stats in all_stats))
    return 0
