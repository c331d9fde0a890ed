"""`turnwise augment music|mix|inspect`: command-line entry points."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from augment.config import MusicConfig
from augment.inspection import pair_stats, render_pair, render_stats, select_pair
from augment.mix import DEFAULT_EVAL_FRACTION, mix_datasets
from augment.run import format_music_summary, run_music
from chat.commands import add_group
from chat.config import add_dataclass_arguments, config_from_args
from chat.formats import FORMATS, ON_ERROR, load_pairs
from chat.runner import add_overwrite_argument, format_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "augment", "Synthesize multi-turn preference pairs (MUSIC) and mix datasets")

    music = group.add_parser(
        "music", help="grow seeds into multi-turn contrastive preference pairs (MUSIC)",
        description="MUSIC pair synthesis (arXiv 2512.24693). Kept pairs go to OUT (canonical preference JSONL); "
                    "every seed's outcome, dropped ones with their reason, goes to OUT.seeds.jsonl, so rerunning "
                    "the same command resumes without redoing kept or dropped seeds.")
    music.add_argument("--input", required=True, metavar="D",
                       help="seed file: preference pairs (TRL/Skywork, HH-RLHF, RMB, ...) or conversations/prompts")
    music.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl of kept pairs")
    add_overwrite_argument(music)
    add_dataclass_arguments(music, MusicConfig)
    music.set_defaults(func=music_command)

    mix = group.add_parser(
        "mix", help="D_aug = D + D_MUSIC with dedup, deterministic shuffle and train/eval split",
        description="Mix original and MUSIC pairs into OUT.train.jsonl and OUT.eval.jsonl (a trailing .jsonl of "
                    "OUT is dropped). Each row's meta gets origin (original|music), source_file and source_id.")
    mix.add_argument("--original", required=True, metavar="D", help="original preference pairs (any pair format)")
    mix.add_argument("--original-format", choices=FORMATS.names(), help="format of D (default: detected)")
    mix.add_argument("--augmented", required=True, metavar="A", help="MUSIC pairs (`augment music` output)")
    mix.add_argument("-o", "--output", required=True, metavar="OUT", help="output prefix")
    amount = mix.add_mutually_exclusive_group()
    amount.add_argument("--ratio", type=float, metavar="R",
                        help="use R x len(D) MUSIC pairs (paper: ~0.42, 31k MUSIC for 73k original)")
    amount.add_argument("--count", type=int, metavar="N", help="use N MUSIC pairs")
    mix.add_argument("--eval-fraction", type=float, default=DEFAULT_EVAL_FRACTION, metavar="F",
                     help=f"share of rows for eval ({DEFAULT_EVAL_FRACTION})")
    mix.add_argument("--seed", type=int, default=0, help="seed of the MUSIC subsample and the shuffle (0)")
    mix.add_argument("--on-error", choices=ON_ERROR, default="fail",
                     help="invalid input rows: fail (default: stop with PATH:LINE: field: reason) or skip them")
    mix.set_defaults(func=mix_command)

    inspect = group.add_parser("inspect", help="show a pair side by side with the divergence marked; --stats",
                               description="Show one pair turn by turn (chosen | rejected; '=' marks identical "
                                           "messages) and/or statistics of the whole file.")
    inspect.add_argument("path", metavar="A", help="pair file (MUSIC output or any preference file)")
    which = inspect.add_mutually_exclusive_group()
    which.add_argument("--id", dest="pair_id", metavar="ID", help="the pair with this id")
    which.add_argument("--index", type=int, metavar="N", help="the N-th pair (0-based; default 0)")
    inspect.add_argument("--stats", action="store_true", help="divergence-turn and turn histograms, lengths")
    inspect.add_argument("--json", action="store_true", help="print the statistics as JSON (with --stats)")
    inspect.add_argument("--width", type=int, default=None, help="line width (default: the terminal's)")
    inspect.set_defaults(func=inspect_command)


def music_command(args: argparse.Namespace) -> int:
    config = config_from_args(MusicConfig, args)
    result = run_music(args.input, args.output, config, overwrite=args.overwrite)
    print(format_summary(result.summary))
    print(format_music_summary(result))
    return result.summary.exit_code


def mix_command(args: argparse.Namespace) -> int:
    result = mix_datasets(args.original, args.augmented, args.output, ratio=args.ratio, count=args.count,
                          eval_fraction=args.eval_fraction, seed=args.seed, original_format=args.original_format,
                          on_error=args.on_error)
    print(f"original {result.original} + MUSIC {result.music_used} (of {result.music_available}); "
          f"{result.duplicates_removed} exact duplicates removed"
          + (f"; {result.rejected} invalid rows skipped" if result.rejected else ""))
    print(f"train {result.train} -> {result.train_path}")
    print(f"eval {result.eval} -> {result.eval_path}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    pairs = load_pairs(args.path)
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    if not args.stats or args.pair_id is not None or args.index is not None:
        print(render_pair(select_pair(pairs, pair_id=args.pair_id, index=args.index), width=width))
    if args.stats:
        stats = pair_stats(pairs)
        print(json.dumps(stats, indent=2) if args.json else render_stats(stats))
    return 0
