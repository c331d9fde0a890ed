"""The `turnwise` command: one parser; each subpackage registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from typing import Callable, Sequence

from chat.errors import InputError, TurnwiseError

#: Modules whose `register(subparsers)` adds a top-level command, in `--help` order.
COMMAND_MODULES = (
    "app.data_cli",       # data inspect | convert
    "augment.cli",        # augment music | mix | inspect
    "rm.cli",             # rm train | eval | score | quantize | serve
    "judge.cli",          # judge pairs | grade | agree | bon
    "generate.cli",       # generate review-instruct | sedi | coevol | mimg | stats
    "app.serve_cli",      # serve
    "app.list_cli",       # list backends | formats | ...
    "app.demo",           # demo
    "pipeline.cli",       # run
)

#: Exit code for bad input or configuration.
EXIT_USAGE = 2

#: Python loggers of third-party libraries whose notices (weights-loading reports, kernel fallbacks, advice)
#: need -v.
THIRD_PARTY_LOGGERS = ("transformers", "datasets", "huggingface_hub", "accelerate", "sentence_transformers", "torch",
                       "torchao", "bitsandbytes", "peft", "trl", "tokenizers")
#: Set (unless already set) for this process's libraries imported later and for child processes
#: (`accelerate launch`): their log level and progress bars, and Python's warnings filters.
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning,ignore::UserWarning",
}
#: Warning categories hidden without -v. turnwise itself reports through logging, never `warnings`, so
#: every warning of these categories comes from a library (transformers, torch, datasets, ...).
QUIET_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnwise",
        description="Multi-turn reward models: synthesize pairs (MUSIC), train and score RMs, judge, generate data.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging, plus the libraries' warnings, notices and progress bars (hidden by "
                             "default); -vv for debug")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def quiet_third_party_output(verbose: int) -> None:
    """Without -v, keep library warnings, log notices and progress bars out of the user's output.

    Done once here for every command: warnings filters, the libraries' log levels (through their
    environment variables for libraries not imported yet, their APIs for those already imported) and
    their progress bars. turnwise's own progress (chat/runner/progress.py) is not affected.
    """
    if verbose:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        import huggingface_hub

        huggingface_hub.utils.disable_progress_bars()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra_args = parser.parse_known_args(argv)
    if extra_args and not getattr(args, "takes_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra_args)}")
    args.extra_args = extra_args
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_third_party_output(args.verbose)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(func(args) or 0)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except TurnwiseError as exc:
        print(f"turnwise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("turnwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
