"""`turnwise rm train|eval|score|quantize|serve`: parse, load, call rm/, print."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from chat.commands import add_group
from chat.compute_thread import compute, run_compute
from chat.errors import ConfigError
from chat.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "rm", "Train, evaluate, score, quantize and serve reward models")

    train = group.add_parser("train", help="train a reward model (TRL RewardTrainer; LoRA/QLoRA optional)",
                             add_help=False)
    # The options are RMTrainConfig's fields, parsed by TRL's own TrlParser when the command runs (`--help` lists
    # them); importing TRL for every `turnwise` start would be slow. app.cli hands the arguments over unparsed.
    train.set_defaults(func=run_train, takes_extra_args=True)

    evaluate = group.add_parser("eval", help="pairwise accuracy of an RM on preference pairs or RewardBench, with reports",
                                description="Pairwise accuracy on preference pairs, or RewardBench / RewardBench-2 "
                                            "subset and section scores when the first row of --data is a RewardBench "
                                            "row ({prompt, chosen, rejected, subset}).")
    _add_model_arguments(evaluate)
    evaluate.add_argument("--data", required=True, help="preference pairs or RewardBench rows (file or hub id)")
    evaluate.add_argument("--format", help="reader for --data (auto-detected when unset; implies --benchmark pairs)")
    evaluate.add_argument("--split", default="train",
                          help="split of a hub dataset id (default: train; RewardBench v1 publishes `filtered`)")
    evaluate.add_argument("--benchmark", choices=("auto", "pairs", "rewardbench"), default="auto",
                          help="auto (default): RewardBench when the first row is one, else preference pairs")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    evaluate.add_argument("--skip-invalid", action="store_true", help="leave out invalid rows (counted) instead of stopping")
    evaluate.add_argument("-o", "--output-dir", type=Path, default=Path("runs/rm-eval"),
                          help="where report.json, report.md, rewards.png and scores.jsonl go (default: runs/rm-eval)")
    evaluate.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples for the 95%% CI")
    evaluate.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed")
    evaluate.set_defaults(func=run_eval)

    score = group.add_parser("score", help="score conversations or pairs into a resumable JSONL")
    _add_model_arguments(score)
    score.add_argument("--input", required=True, help="conversations or preference pairs (file or hub id)")
    score.add_argument("--format", help="reader for --input (auto-detected when unset)")
    score.add_argument("-o", "--output", required=True, type=Path, help="output JSONL (resumes if it exists)")
    score.add_argument("--per-turn", action="store_true", help="reward after every assistant turn (one pass)")
    score.add_argument("--batch-size", type=int, default=256,
                       help="items handed to the model at once (sorted by length inside; default 256)")
    score.add_argument("--limit", type=int, help="score only the first N items")
    score.add_argument("--no-progress", action="store_true", help="no progress bar")
    score.add_argument("--overwrite", action="store_true",
                       help="remove OUT and its side files and start over; without it a rerun resumes OUT, and is "
                            "refused if the model or scoring options differ")
    score.set_defaults(func=run_score)

    quantize = group.add_parser("quantize", help="merge LoRA and quantize an RM to int8 or nf4 (bitsandbytes)")
    _add_model_arguments(quantize)
    quantize.add_argument("--bits", type=int, choices=[8, 4], required=True, help="8 (LLM.int8) or 4 (nf4, double quant)")
    quantize.add_argument("-o", "--output-dir", type=Path, required=True, help="where the quantized RM is saved")
    quantize.add_argument("--data", help="preference pairs to measure the accuracy change on (optional)")
    quantize.add_argument("--format", help="reader for --data")
    quantize.add_argument("--limit", type=int, default=None, help="use only the first N pairs of --data")
    quantize.add_argument("--skip-invalid", action="store_true", help="leave out invalid rows of --data")
    quantize.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                          help="also leave these linear layers unquantized (repeatable; a module-name prefix, suffix "
                               "or regex, e.g. '.*attention'); the reward head always stays unquantized")
    quantize.set_defaults(func=run_quantize)

    serve = group.add_parser("serve", help="HTTP scoring server on 127.0.0.1 (POST /score, POST /get_reward, GET /health)",
                             description="POST /score takes {conversations: [[messages]], per_turn}; POST /get_reward "
                                         "is OpenRLHF's remote reward model protocol ({query: [str]} -> {rewards}).")
    _add_model_arguments(serve)
    serve.add_argument("--port", type=int, default=8008, help="TCP port (default 8008; 0 = any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, local only)")
    serve.add_argument("--max-batch", type=int, default=64, help="most conversations scored in one batch")
    serve.add_argument("--batch-wait-ms", type=float, default=10.0,
                       help="how long to gather concurrent requests into one batch (default 10 ms)")
    serve.add_argument("--api-key-env", metavar="NAME",
                       help="NAME of an env var holding a key that clients must send as `Authorization: Bearer KEY`")
    serve.set_defaults(func=run_serve)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="trained RM: a directory or hub id (full, LoRA adapter or quantized)")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit) when --model is a hub id")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the model repository's own modelling code to run (transformers trust_remote_code)")
    parser.add_argument("--base-model", help="base model of a LoRA adapter, if not where adapter_config.json says")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--max-length", type=int, help="token limit per conversation (default: the training one)")
    if parser.prog.split()[-1] != "quantize":
        parser.add_argument("--dynamic-int8", action="store_true",
                            help="CPU only: int8 dynamic quantization of the linear layers; faster scoring, but "
                                 "rewards change (not exact; see bench/NOTES.md)")


def _load_model(args: argparse.Namespace) -> Any:
    from rm.model import RewardModel

    return RewardModel.load(args.model, device=args.device, base_model=args.base_model, max_length=args.max_length,
                            dynamic_int8=getattr(args, "dynamic_int8", False),
                            trust_remote_code=args.trust_remote_code, revision=args.revision)


def _load_pairs(args: argparse.Namespace, source: str) -> list:
    from rm.data import load_preference_pairs

    return load_preference_pairs(source, args.format, args.limit, skip_invalid=args.skip_invalid,
                                 split=getattr(args, "split", "train"))


TRAIN_DESCRIPTION = ("Train a Bradley-Terry reward model. Options are parsed by TRL's TrlParser, as in `trl reward`: "
                     "every RewardConfig / TrainingArguments field plus turnwise's (model, data, LoRA/QLoRA), from "
                     "--config YAML (with an optional `env:` mapping) and as --field overrides; boolean flags may be "
                     "given bare (--use_peft).")


def parse_train_config(argv: list[str], prog: str = "turnwise rm train") -> Any:
    """RMTrainConfig from command-line arguments through `trl.TrlParser` (imported here: it is slow to import)."""
    import yaml
    from trl import TrlParser

    from rm.config import RMTrainConfig

    argv = list(argv)
    config_path = "--config"
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise ConfigError("--config: expected a YAML file")
        if not Path(argv[index + 1]).is_file():
            raise ConfigError(f"--config: {argv[index + 1]}: no such file")
        config_path = argv[index + 1]
    parser = TrlParser((RMTrainConfig,), prog=prog, description=TRAIN_DESCRIPTION)
    try:
        (config,) = parser.parse_args_and_config(argv)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{config_path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except (ValueError, TypeError) as exc:  # unknown config keys, field checks in __post_init__
        raise ConfigError(f"rm train: {str(exc).splitlines()[0]}") from None
    return config


def run_train(args: argparse.Namespace) -> int:
    from rm.train import train_reward_model

    config = parse_train_config(args.extra_args)
    result = train_reward_model(config)
    truncation = result.truncation["train"]
    print(f"trained {result.global_step} steps on {result.train_pairs} pairs in {result.wall_seconds:.1f}s "
          f"({result.tokens_per_second:.0f} tokens/s) -> {result.output_dir}")
    print(f"truncated to fit max_length={config.max_length}: {truncation['truncated_sequences']} of "
          f"{truncation['sequences']} sequences (whole earlier turns removed: {truncation['removed_turns']}; "
          f"none dropped)")
    if result.eval_metrics:
        print(f"eval on {result.eval_pairs} pairs: accuracy {result.eval_metrics.get('eval_accuracy', float('nan')):.4f}, "
              f"loss {result.eval_metrics.get('eval_loss', float('nan')):.4f}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import time

    from rm.evaluate import evaluate_scores, write_report
    from rm.rewardbench import peek_layout

    layout = None
    if args.benchmark != "pairs" and not args.format:
        layout = peek_layout(args.data, args.split)
        if layout is None and args.benchmark == "rewardbench":
            raise ConfigError(f"{args.data}: the first row is not a RewardBench row "
                              "({prompt, chosen, rejected, subset})")
    if layout is not None:
        return run_rewardbench(args)
    pairs = _load_pairs(args, args.data)
    model = _load_model(args)
    started = time.perf_counter()
    scores = model.score_pairs(pairs)
    report = evaluate_scores(pairs, scores, model=args.model, data=args.data, resamples=args.bootstrap, seed=args.seed)
    report.seconds = time.perf_counter() - started
    paths = write_report(report, scores, pairs, args.output_dir)
    print(report.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run_rewardbench(args: argparse.Namespace) -> int:
    """RewardBench v1: subset accuracies, sections and the pairwise report; v2: best-of-4 subsets and Score."""
    from rm.evaluate import evaluate_scores, write_report
    from rm.rewardbench import V1, evaluate_benchmark, read_benchmark, score_items, write_benchmark

    if args.skip_invalid:
        raise ConfigError("--skip-invalid does not apply to RewardBench data: every item counts in its subset")
    data = read_benchmark(args.data, args.split, args.limit)
    model = _load_model(args)
    rewards = score_items(model, data.items)
    result = evaluate_benchmark(data, rewards, model=args.model)
    paths = write_benchmark(result, data, rewards, args.output_dir)
    if data.layout == V1:
        pairs = [item.to_pair() for item in data.items]
        scores = [(r[0], r[1]) for r in rewards]
        report = evaluate_scores(pairs, scores, model=args.model, data=args.data, resamples=args.bootstrap,
                                 seed=args.seed)
        paths.update({f"pairs_{k}": v for k, v in write_report(report, scores, pairs, args.output_dir).items()})
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def score_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What decides `rm score` records (the safe-resume fingerprint): the model, its weights and the scoring
    options; batch size, limit and device only change how the run goes."""
    from chat.backends.local import weights_fingerprint

    model_dir = Path(args.model)
    return {"rm.model": args.model, "rm.weights": weights_fingerprint(model_dir) if model_dir.is_dir() else None,
            "rm.revision": args.revision, "rm.base_model": args.base_model, "rm.max_length": args.max_length,
            "rm.dynamic_int8": getattr(args, "dynamic_int8", False), "rm.per_turn": args.per_turn}


def run_score(args: argparse.Namespace) -> int:
    from chat.conversation import Conversation, PreferencePair
    from chat.formats import read_records
    from chat.runner import check_settings, claim_output, format_summary, run

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    items = read_records(args.input, args.format)
    settings = score_settings(args)
    if not args.overwrite:      # a mismatched resume is refused before the model loads
        check_settings(args.output, settings)
    # a model that cannot load leaves the output untouched; loaded on the compute thread that scores with it
    # (chat/compute_thread.py: one thread for all tensor work)
    model = run_compute(_load_model, args)
    claim_output(args.output, settings, overwrite=args.overwrite)

    def score_items(batch: list[Any]) -> list[dict[str, Any]]:
        for item in batch:
            if not isinstance(item, (PreferencePair, Conversation)):
                raise ConfigError(f"{args.input}: `rm score` needs conversations or preference pairs, "
                                  f"got {type(item).__name__}")
        conversations = [c for item in batch for c in ((item.chosen, item.rejected) if isinstance(item, PreferencePair)
                                                       else (item,))]
        values = model.score_turns_batch(conversations) if args.per_turn else model.score(conversations)
        key = "turn_rewards" if args.per_turn else "reward"
        records, cursor = [], 0
        for item in batch:
            if isinstance(item, PreferencePair):
                records.append({"id": item.id, f"chosen_{key}": values[cursor], f"rejected_{key}": values[cursor + 1]})
                cursor += 2
            else:
                records.append({"id": item.id, key: values[cursor]})
                cursor += 1
        return records

    async def batch_worker(batch: list[Any]) -> list[dict[str, Any]]:
        return await compute(score_items, batch)

    summary = run(items, None, args.output, batch_worker=batch_worker, batch_size=args.batch_size, concurrency=1,
                  description=f"rm score {Path(str(args.input)).name}", progress=not args.no_progress,
                  limit=args.limit, input_name=str(args.input))
    print(format_summary(summary))
    return 130 if summary.interrupted else 0


def run_quantize(args: argparse.Namespace) -> int:
    from rm.quantize import quantize_reward_model

    pairs = _load_pairs(args, args.data) if args.data else None
    report = quantize_reward_model(args.model, args.bits, args.output_dir, eval_pairs=pairs, device=args.device,
                                   keep_float=args.keep_float, trust_remote_code=args.trust_remote_code,
                                   revision=args.revision)
    info = report.to_dict()
    print(f"quantized to {args.bits} bit -> {report.output_dir}")
    print(f"memory footprint: {report.memory_bytes_before / 2**20:.1f} MiB -> {report.memory_bytes_after / 2**20:.1f} MiB "
          f"({info['memory_ratio']:.2f}x)")
    if report.accuracy_change_points is not None:
        print(f"accuracy on {report.eval_pairs} pairs: {report.accuracy_before:.4f} -> {report.accuracy_after:.4f} "
              f"({report.accuracy_change_points:+.2f} points; {report.flipped_pairs} pairs flipped, mean |reward change| "
              f"{report.mean_abs_reward_change:.4f})")
    print(json.dumps(info))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import os

    from rm.serve import RewardServer

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding to %s exposes the reward model beyond this machine%s", args.host,
                       "" if api_key else " without an API key (--api-key-env)")
    model = _load_model(args)
    try:
        server = RewardServer(model, args.host, args.port, max_batch=args.max_batch,
                              max_wait_s=args.batch_wait_ms / 1000.0, api_key=api_key)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"serving {args.model} on {server.url} (POST /score, POST /get_reward, GET /health"
          f"{'; API key required' if api_key else ''}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
