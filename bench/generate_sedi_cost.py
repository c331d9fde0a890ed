"""Bench: SeDi vs Self-Instruct LLM calls per kept instruction and distinct-2, same backend and seeds in both modes.

1. Scripted generator (measures the filters, not model quality): each generation call returns, as the JSON object
   the step asks for, instructions drawn with replacement from ../shared/data/seeds/user_oriented_instructions.jsonl,
   some with a word dropped or added, so that the pool filter meets near-duplicates as it does with a real LLM.
2. The embedded model (Qwen2.5-Coder-0.5B-Instruct, `local` backend, 8 requests per batch, no response cache) writes
   the instructions and their responses: 3 iterations x 8 generation calls x 4 instructions, max_tokens 128.
Seeds: the 175 Self-Instruct seed tasks; no RM. The scripted part runs SeDi without feedback (`feedback_signal: rm`
and no RM: the scripted backend has no logprobs), so its difference is the relaxed pool threshold and the
diverse-batch filter; the embedded part runs SeDi's default feedback (the responder's own loss on its answer,
thresholds at quantiles of the losses of 32 sampled seed tasks: 32 one-off responses, reported apart too).
Run: .venv/bin/python bench/generate_sedi_cost.py [--skip-embedded | --skip-scripted] [--iterations 3 ...]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.backends.scripted import ScriptedBackend  # noqa: E402
from chat.formats import load_conversations  # noqa: E402
from generate.sedi.algorithm import SediBackends  # noqa: E402
from generate.sedi.config import SediConfig  # noqa: E402
from generate.sedi.run import run_sedi  # noqa: E402
from generate.stats import generation_stats  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seeds"


def scripted_llm(candidates: list[str]):
    """Generation prompts ("Come up with N new ... tasks"): the JSON object {"tasks": [...]} of N instructions the
    generate-v3 step asks for (the scripted backend validates it); any other prompt: a response."""
    def reply(messages, params):
        prompt = messages[-1]["content"]
        asked = re.match(r"Come up with (\d+) new", prompt)
        if not asked:
            return "A response."
        rng = random.Random(params["seed"])
        items = []
        for _ in range(int(asked.group(1))):
            words = rng.choice(candidates).split()
            if rng.random() < 0.5 and len(words) > 4:
                del words[rng.randrange(len(words))]
            items.append(" ".join(words))
        return json.dumps({"tasks": items})
    return reply


def run_modes(config_of, backend_of=None) -> dict:
    """Both modes on the same seeds: kept pairs, LLM calls, drops and diversity of the kept instructions.
    `config_of(mode)` gives the mode's config; `backend_of()` a fresh backend to pass in (None: built from config)."""
    results = {}
    for mode in ("self-instruct", "sedi"):
        backends = None
        if backend_of is not None:
            backend = backend_of()
            backends = SediBackends(backend, backend)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.jsonl"
            started = time.monotonic()
            result = run_sedi(SHARED / "self_instruct_seed_tasks.jsonl", out, config_of(mode), backends=backends,
                              progress=False, handle_sigint=False)
            seconds = time.monotonic() - started
            stats = generation_stats(load_conversations(out))
        calls = result.counters["llm_calls"]
        calibration = result.counters["calibration_seeds_scored"]      # one responder call each
        results[mode] = {"kept": result.kept, "calls": calls, "calls_per_kept": calls / max(result.kept, 1),
                         "calibration_seeds_scored": calibration,
                         "calls_per_kept_after_calibration": (calls - calibration) / max(result.kept, 1),
                         "generated": result.counters["generated"],
                         "generation_parse_failures": result.counters["generation_parse_failures"],
                         "dropped": result.dropped, "mean_pairwise_rouge_l": stats["mean_pairwise_rouge_l"],
                         "distinct_2": stats["distinct_2"],
                         "tokens": result.counters["prompt_tokens"] + result.counters["completion_tokens"],
                         "seconds": round(seconds, 1)}
    return results


def record_comparison(name: str, results: dict, setup: str) -> None:
    """One row: sedi / self-instruct calls per kept instruction; the target is the paper's 36% saving at equal
    or better diversity (distinct-2 of the kept instructions)."""
    sedi, self_instruct = results["sedi"], results["self-instruct"]
    ratio = sedi["calls_per_kept"] / self_instruct["calls_per_kept"]
    print(json.dumps(results, indent=2))
    print(f"{name}: sedi / self-instruct calls per kept instruction: {ratio:.3f} (target <= 0.64)")
    record(f"SeDi vs Self-Instruct: LLM calls per kept instruction ({name})",
           baseline="Self-Instruct (ROUGE-L < 0.7), same backend and seeds", ratio=ratio,
           target="<= 0.64x at equal or better distinct-2",
           met=ratio <= 0.64 and sedi["distinct_2"] >= self_instruct["distinct_2"],
           details={"summary": f"{sedi['calls_per_kept']:.3f} vs {self_instruct['calls_per_kept']:.3f} calls per kept "
                               f"({sedi['kept']} vs {self_instruct['kept']} kept); distinct-2 "
                               f"{sedi['distinct_2']:.3f} vs {self_instruct['distinct_2']:.3f}; SeDi's one-off seed "
                               f"scoring {sedi['calibration_seeds_scored']} calls (without it "
                               f"{sedi['calls_per_kept_after_calibration']:.3f} calls per kept); {setup}",
                    **results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-scripted", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--iterations", type=int, default=3, help="embedded run: iterations per mode")
    parser.add_argument("--requests", type=int, default=8, help="embedded run: generation calls per iteration")
    parser.add_argument("--instructions-per-call", type=int, default=4, help="embedded run")
    parser.add_argument("--max-tokens", type=int, default=128, help="embedded run: per generation or response")
    args = parser.parse_args()
    if not args.skip_scripted:
        candidates = [json.loads(line)["instruction"] for line in (SHARED / "user_oriented_instructions.jsonl").open()]
        candidates = [" ".join(c.split()) for c in candidates]
        results = run_modes(lambda mode: SediConfig(mode=mode, backends={"default": {"kind": "scripted"}},
                                                    iterations=6, requests_per_iteration=16, instructions_per_call=8,
                                                    feedback_signal="rm"),
                            lambda: ScriptedBackend(scripted_llm(candidates)))
        record_comparison("scripted generator", results, "6 iterations x 16 calls x 8 instructions")
    if not args.skip_embedded:
        embedded = {"default": {"kind": "local", "model": "embedded", "max_batch_size": 8, "cache": False}}
        results = run_modes(lambda mode: SediConfig(
            mode=mode, backends=embedded, iterations=args.iterations, requests_per_iteration=args.requests,
            instructions_per_call=args.instructions_per_call, max_tokens=args.max_tokens, concurrency=8))
        record_comparison("embedded instruct model", results,
                          f"Qwen2.5-Coder-0.5B-Instruct, {args.iterations} iterations x {args.requests} calls x "
                          f"{args.instructions_per_call} instructions, max_tokens {args.max_tokens}, 8 calls in "
                          f"flight, no response cache, no RM; SeDi feedback: the responder's loss")


if __name__ == "__main__":
    main()
