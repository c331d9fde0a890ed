"""`turnwise generate <method>|stats`: one subcommand per registered generator (generate.registry), plus stats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chat.commands import add_group
from chat.config import add_dataclass_arguments, config_from_args
from chat.runner import add_overwrite_argument
from generate.registry import Generator, load_generators


def register(subparsers: argparse._SubParsersAction) -> None:
    generators = load_generators()
    group = add_group(subparsers, "generate", "RM-guided data generation: "
                      + ", ".join(generator.name for generator in generators) + "; stats")
    for generator in generators:
        add_generator(group, generator)
    add_stats(group)


def add_generator(group: argparse._SubParsersAction, generator: Generator) -> None:
    """`turnwise generate <name>`: the input flag of its input kind, -o, --overwrite, its export flag, its config."""
    parser = group.add_parser(generator.name, help=generator.help, description=generator.about)
    parser.add_argument(generator.input.flag, required=True, metavar="D", nargs="+" if generator.input.many else None,
                        help=generator.input_help)
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output .jsonl")
    add_overwrite_argument(parser)
    if generator.export is not None:
        parser.add_argument(generator.export.flag, type=Path, metavar="PATH", help=generator.export.help)
    add_dataclass_arguments(parser, generator.config)
    parser.set_defaults(func=generator_command, generator=generator)


def generator_command(args: argparse.Namespace) -> int:
    """Run the generator on the input, print its report and, when asked, export its kept records."""
    from generate.export import export_file

    generator: Generator = args.generator
    result = generator.run(getattr(args, generator.input.key), args.output, config_from_args(generator.config, args),
                           overwrite=args.overwrite)
    print(generator.report(result, args.output))
    export = generator.export
    if export is not None and getattr(args, export.key):
        path = getattr(args, export.key)
        print(f"{export_file(args.output, path, export.format)} {export.unit} -> {path} ({export.label})")
    return generator.exit_code(result)


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


def stats_command(args: argparse.Namespace) -> int:
    from generate.stats import format_stats, stats_for_file

    all_stats = [stats_for_file(path, embeddings=not args.no_embeddings, plots_dir=args.plots,
                                max_pairs=args.max_pairs) for path in args.path]
    if args.json:
        print(json.dumps(all_stats if len(all_stats) > 1 else all_stats[0], indent=2))
    else:
        print("\n\n".join(format_stats(stats) for stats in all_stats))
    return 0
