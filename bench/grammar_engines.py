"""Choose the `local` backend's grammar engine by measurement: xgrammar vs llguidance on the same model and prompts.

For each engine, on the project's own schemas (MUSIC swap object, pairwise verdict enum, a list of 3 strings):
1. schema compile time (tokenizer setup once, then each schema with an empty cache);
2. per-token mask overhead: replaying the constrained outputs through a fresh matcher, time of
   fill-bitmask + apply-to-logits + accept per token (no model);
3. decode tok/s constrained vs free at batch 1 and batch 8, greedy. The free run decodes exactly as
   many tokens per prompt as the constrained run did (end-of-turn masked until then), so both do
   equal work. Target: constrained / free >= 0.85;
4. correctness: fraction of constrained replies that parse and validate against their schema.

Both engines fill the same packed int32 bitmask, applied with the same kernel, so the comparison isolates the
engines' mask computation. Sized to finish in under 5 minutes on an idle 2-core machine (--quick: about half).
Run: .venv/bin/python bench/grammar_engines.py [--quick] [--model PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402


SWAP = {"type": "json_schema", "json_schema": {"name": "swap", "strict": True, "schema": {
    "type": "object", "properties": {"swapped_instruction": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["swapped_instruction", "reason"], "additionalProperties": False}}}
VERDICT = {"type": "json_schema", "json_schema": {"name": "pairwise_verdict", "strict": True, "schema": {
    "type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "C"]}},
    "required": ["verdict"], "additionalProperties": False}}}
THREE = {"type": "json_schema", "json_schema": {"name": "three_strings", "strict": True, "schema": {
    "type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}}}

INSTRUCTIONS = ["Write a haiku about autumn.", "Explain how vaccines work.", "Give me a recipe for pancakes.",
                "Summarize the plot of Hamlet.", "How do I reverse a list in Python?", "Plan a weekend in Rome.",
                "What causes the seasons?", "Write a cover letter for a barista job."]
TOPICS = ["fruits", "rivers", "programming languages", "board games", "birds", "planets", "colours", "sports"]


def prompts_for(name: str) -> list[str]:
    """Eight realistic prompts per schema, in the style of the project's own prompts."""
    if name == "swap":
        return [f'Instruction: "{i}"\nWrite a related but different instruction. Reply with only a JSON object: '
                '{"swapped_instruction": "...", "reason": "..."} where reason says in one sentence how they differ.'
                for i in INSTRUCTIONS]
    if name == "verdict":
        return [f"Question: {i}\n[Answer A] I don't know.\n[Answer B] Here is a careful, complete answer.\n"
                'Which answer is better? Reply with only {"verdict": "A"}, {"verdict": "B"} or {"verdict": "C"} for a tie.'
                for i in INSTRUCTIONS]
    return [f"Name three {t}. Reply with only a JSON array of three strings." for t in TOPICS]


SCHEMAS = {"swap": SWAP, "verdict": VERDICT, "three": THREE}


class LLGuidanceEngine:
    """llguidance behind the interface of chat.backends.grammar.GrammarEngine (compile / matcher / fill / accept)."""

    name = "llguidance"

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int]):
        import llguidance.hf

        self.vocab_size = vocab_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=stop_ids)

    def compile(self, response_format: dict[str, Any]) -> "LLGuidanceGrammar":
        import llguidance

        from chat.backends.grammar import schema_of

        schema, _ = schema_of(response_format)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, overrides={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})
        template = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if template.is_error():
            raise ValueError(template.get_error())
        return LLGuidanceGrammar(template)

    def new_bitmask(self, rows: int) -> Any:
        import llguidance.torch

        return llguidance.torch.allocate_token_bitmask(rows, self.vocab_size)

    def apply(self, logits: Any, bitmask: Any, rows: list[int]) -> None:
        from chat.backends.grammar import apply_bitmask

        apply_bitmask(logits, bitmask, rows, self.vocab_size)


class LLGuidanceGrammar:
    def __init__(self, template: Any):
        self.template = template

    def matcher(self) -> "LLGuidanceMatcher":
        return LLGuidanceMatcher(self.template.deep_copy())


class LLGuidanceMatcher:
    def __init__(self, matcher: Any):
        self.matcher = matcher

    def fill(self, bitmask: Any, row: int) -> None:
        import llguidance.torch

        llguidance.torch.fill_next_token_bitmask(self.matcher, bitmask, row)

    def accept(self, token: int) -> bool:
        return bool(self.matcher.consume_token(token)) and not self.matcher.is_error()


def make_engine(name: str, local: Any) -> Any:
    from chat.backends.grammar import GrammarEngine

    cls = {"xgrammar": GrammarEngine, "llguidance": LLGuidanceEngine}[name]
    return cls(local.tokenizer, local.vocab_size, sorted(local.eos_ids))


def compile_times(name: str, local: Any) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """A new engine (tokenizer setup, ms) and each schema compiled once by it: the first compile of a schema
    is a cold one, as both engines cache by schema."""
    started = time.perf_counter()
    engine = make_engine(name, local)
    times = {"tokenizer_setup_ms": (time.perf_counter() - started) * 1000}
    grammars = {}
    for schema_name, response_format in SCHEMAS.items():
        started = time.perf_counter()
        grammars[schema_name] = engine.compile(response_format)
        grammars[schema_name].matcher()
        times[f"compile_{schema_name}_ms"] = (time.perf_counter() - started) * 1000
    return engine, grammars, times


def requests_for(local: Any, prompts: list[str], max_tokens: int, grammar: Any = None,
                 exact: list[int] | None = None) -> list[Any]:
    from chat.backends.local import GenerationRequest

    out = []
    for n, prompt in enumerate(prompts):
        tokens = exact[n] if exact else max_tokens
        out.append(GenerationRequest(local.encode_chat([{"role": "user", "content": prompt}]), 0.0, tokens, (), 0,
                                     min_tokens=tokens if exact else 1, grammar=grammar))
    return out


def decode(local: Any, batches: list[list[Any]]) -> float:
    """Run the batches in turn; generated tokens per second over all of them."""
    started = time.perf_counter()
    for batch in batches:
        local.generate(batch)
    elapsed = time.perf_counter() - started
    return sum(len(r.output_ids) for batch in batches for r in batch) / elapsed


def measure_engine(name: str, local: Any, prompts_per_schema: int, batch1_prompts: int,
                   max_tokens: int) -> dict[str, Any]:
    engine, grammars, times = compile_times(name, local)
    local._grammar_engine = engine  # the bench swaps the engine under test in (both fill the same bitmask)
    result: dict[str, Any] = {"engine": name, **times}
    for batch_size, count in ((8, prompts_per_schema), (1, batch1_prompts)):
        constrained_batches, free_batches = [], []
        for schema_name, grammar in grammars.items():
            prompts = prompts_for(schema_name)[:count]
            requests = requests_for(local, prompts, max_tokens, grammar)
            constrained_batches += [requests[i:i + batch_size] for i in range(0, len(requests), batch_size)]
        constrained = decode(local, constrained_batches)
        print(f"  {name} batch {batch_size}: constrained {constrained:.1f} tok/s", file=sys.stderr, flush=True)
        for schema_name in grammars:  # the same prompts again, free, each to the constrained run's length
            done = [r for batch in constrained_batches for r in batch if r.grammar is grammars[schema_name]]
            requests = requests_for(local, prompts_for(schema_name)[:count], max_tokens,
                                    exact=[max(1, len(r.output_ids)) for r in done])
            free_batches += [requests[i:i + batch_size] for i in range(0, len(requests), batch_size)]
        free = decode(local, free_batches)
        print(f"  {name} batch {batch_size}: free {free:.1f} tok/s", file=sys.stderr, flush=True)
        result[f"batch{batch_size}"] = {"constrained_tok_s": constrained, "free_tok_s": free,
                                        "ratio": constrained / free}
        if batch_size == 8:
            result["correct"], result["replies"] = correctness(grammars, constrained_batches)
            result["mask_us_per_token"] = mask_overhead(engine, grammars, constrained_batches)
    return result


def correctness(grammars: dict[str, Any], batches: list[list[Any]]) -> tuple[float, int]:
    """Fraction of constrained replies that parse as JSON and validate against their schema."""
    from chat.backends.response_format import reply_mismatch

    formats = {id(g): SCHEMAS[n] for n, g in grammars.items()}
    replies = [r for batch in batches for r in batch]
    good = sum(reply_mismatch(r.text, formats[id(r.grammar)]) is None for r in replies)
    return good / len(replies), len(replies)


def mask_overhead(engine: Any, grammars: dict[str, Any], batches: list[list[Any]]) -> dict[str, float]:
    """Replay every constrained reply through a fresh matcher: microseconds per token of fill, apply, accept."""
    import torch

    bitmask = engine.new_bitmask(1)
    apply = engine.apply
    logits = torch.zeros((1, engine.vocab_size))
    fill_s = apply_s = accept_s = 0.0
    tokens = 0
    for request in (r for batch in batches for r in batch):
        matcher = request.grammar.matcher()
        for token in request.output_ids:
            t0 = time.perf_counter()
            matcher.fill(bitmask, 0)
            t1 = time.perf_counter()
            apply(logits, bitmask, [0])
            t2 = time.perf_counter()
            matcher.accept(token)
            t3 = time.perf_counter()
            fill_s, apply_s, accept_s, tokens = fill_s + t1 - t0, apply_s + t2 - t1, accept_s + t3 - t2, tokens + 1
    return {"fill": fill_s / tokens * 1e6, "apply": apply_s / tokens * 1e6, "accept": accept_s / tokens * 1e6,
            "total": (fill_s + apply_s + accept_s) / tokens * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="model path or a `turnwise list models` name")
    parser.add_argument("--engines", nargs="+", default=["xgrammar", "llguidance"])
    parser.add_argument("--quick", action="store_true", help="4 prompts per schema at batch 8, 1 at batch 1")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    from chat.backends.local import load_engine

    engines = [name for name in args.engines if importlib.util.find_spec(name) is not None]
    for name in sorted(set(args.engines) - set(engines)):
        print(f"skipped {name}: not installed (pip install {name})")
    local = load_engine(args.model)
    per_schema, batch1 = (4, 1) if args.quick else (8, 2)
    local.generate(requests_for(local, prompts_for("three")[:1], 4))  # warm-up
    rows = [measure_engine(name, local, per_schema, batch1, args.max_tokens) for name in engines]
    load = os.getloadavg()[0]
    print(f"model {args.model} (quantize {local.quantize}); {len(SCHEMAS)} schemas x {per_schema} prompts at batch 8, "
          f"x {batch1} at batch 1; load {load:.1f}")
    print(f"{'engine':<12}{'setup ms':>9}{'compile ms':>20}{'mask us/tok':>13}"
          f"{'b1 c/f tok/s':>16}{'ratio':>7}{'b8 c/f tok/s':>16}{'ratio':>7}{'valid':>8}")
    for r in rows:
        compiled = "/".join(f"{r[f'compile_{n}_ms']:.0f}" for n in SCHEMAS)
        b1, b8 = r["batch1"], r["batch8"]
        print(f"{r['engine']:<12}{r['tokenizer_setup_ms']:>9.0f}{compiled:>20}{r['mask_us_per_token']['total']:>13.0f}"
              f"{b1['constrained_tok_s']:>8.1f}/{b1['free_tok_s']:<7.1f}{b1['ratio']:>7.2f}"
              f"{b8['constrained_tok_s']:>8.1f}/{b8['free_tok_s']:<7.1f}{b8['ratio']:>7.2f}{r['correct']:>8.2f}")
    for r in rows:
        for batch in ("batch1", "batch8"):
            numbers = r[batch]
            record(f"local grammar engine {r['engine']} ({Path(args.model).name}, {local.quantize}): constrained vs "
                   f"free decode tok/s, {batch.replace('batch', 'batch ')}",
                   baseline="free decoding of the same prompts to the same lengths", ratio=numbers["ratio"],
                   target=">= 0.85x", met=numbers["ratio"] >= 0.85,
                   details={"summary": f"{numbers['constrained_tok_s']:.1f} vs {numbers['free_tok_s']:.1f} tok/s; "
                                       f"valid {r['correct']:.2f} of {r['replies']}; mask "
                                       f"{r['mask_us_per_token']['total']:.0f} us/token",
                            **{k: v for k, v in r.items() if k.endswith("_ms")}})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "rows": rows, "load": load}, handle, indent=2)


if __name__ == "__main__":
    main()
