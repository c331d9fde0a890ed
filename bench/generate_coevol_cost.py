"""Bench: CoEvol LLM calls and tokens per refined item and acceptance rate per iteration.

1. Scripted agents (structure, not quality): every agent answers in its format (JSON for the judge and advisor);
   the judge prefers the edit in both orders with probability 0.6 per decision (seeded by the request), so the
   measured cost follows from the accept/stop rules. 20 Self-Instruct seed tasks (instruction + output), 3
   iterations, LLM judge.
2. The embedded model (Qwen2.5-Coder-0.5B-Instruct, `local` backend, 8 requests per batch, no response cache) on
   the first 16 Self-Instruct seed tasks (instruction + the seed's output; Alpaca was generated from these seeds
   and the shared data holds no Alpaca file), 2 iterations, max_tokens 128, 8 items in flight: the share of items
   that finish without a parse failure (target >= 80%), what a small model costs and how often an edit survives.
   With the CPU RM trained on hh-rlhf (`--rm`, default runs/rm-minilm-hh from `bench/run_all --only rm_real_data`)
   every accepted edit is scored before and after it (docs/methods.md, CoEvol step 5): the row reports the mean
   RM change of the accepted edits and of the refined turns.
Run: .venv/bin/python bench/generate_coevol_cost.py [--skip-embedded | --skip-scripted] [--items 16 --rm DIR ...]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.backends.scripted import ScriptedBackend  # noqa: E402
from chat.runner import read_records  # noqa: E402
from generate.coevol.algorithm import CoevolBackends  # noqa: E402
from generate.coevol.config import CoevolConfig  # noqa: E402
from generate.coevol.run import coevol_report, run_coevol  # noqa: E402
from generate.prompts import render  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "seeds" / "self_instruct_seed_tasks.jsonl"
TRAINED_RM = Path(__file__).resolve().parents[1] / "runs" / "rm-minilm-hh"
JUDGE_MARK = render("coevol_judge_system").splitlines()[0]
ADVISOR_MARK = render("coevol_advisor_system", max_suggestions=3).splitlines()[0]
EDITOR_MARK = render("coevol_editor_system").splitlines()[0]


def scripted_agents(accept_probability: float):
    """Judge and advisor answer with the JSON objects of their generate-v3 steps (the scripted backend validates
    them); the editor and the debaters write plain text, as their prompts ask."""
    decisions: dict[str, bool] = {}

    def reply(messages, params):
        system, text = messages[0]["content"], messages[1]["content"]
        if system.startswith(JUDGE_MARK):
            a = text.split("Response A:\n")[1].split("\n\nResponse B:")[0]
            b = text.split("Response B:\n")[1].split("\n\nReply with")[0]
            new = "A" if a.count("[edited]") > b.count("[edited]") else "B"
            key = text.split("Instruction:\n")[1].split("\n\nResponse A")[0] + str(max(a.count("[edited]"),
                                                                                       b.count("[edited]")))
            accept = decisions.setdefault(key, random.Random(key).random() < accept_probability)
            return json.dumps({"verdict": new if accept else {"A": "B", "B": "A"}[new]})
        if system.startswith(ADVISOR_MARK):
            return json.dumps({"suggestions": ["Add a concrete example.", "State the key fact first.",
                                               "Trim repetition."]})
        if system.startswith(EDITOR_MARK):
            response = text.split("Response:\n")[1].split("\n\nSuggestions:")[0]
            return f"{response} For example, consider a concrete case. [edited]"
        return "The response is mostly accurate but misses an example and could state the key fact first."
    return reply


def summarise(result, output: Path, seconds: float) -> dict:
    report = coevol_report(output)
    items = result.summary.done
    tokens = result.counters["prompt_tokens"] + result.counters["completion_tokens"]
    return {"items": items, "llm_calls": result.counters["llm_calls"], "tokens": tokens,
            "calls_per_item": result.counters["llm_calls"] / items, "tokens_per_item": tokens / items,
            "turns_changed": report["changed_turns"], "stop_reasons": report["stop_reasons"],
            "acceptance_by_iteration": report["acceptance_by_iteration"], "seconds": round(seconds, 1),
            "rm_delta_turns": report.get("rm_delta"), "rm_delta_accepted_edits": report.get("rm_delta_accepted_edits")}


def parse_failures(output: Path) -> tuple[int, Counter, list[str]]:
    """Items with a turn stopped by a step that never parsed, those failures by step ("advisor", "positive/1",
    ...), and the first few failure details."""
    items, steps, examples = 0, Counter(), []
    for row in read_records(output):
        failed = [iteration["parse_failure"] for turn in row["meta"]["coevol"]["turns"]
                  for iteration in turn["iterations"] if "parse_failure" in iteration]
        items += bool(failed)
        for detail in failed:
            steps["/".join(detail.split(":", 1)[0].split("/")[2:]) or "?"] += 1
            if len(examples) < 4:
                examples.append(detail[:200])
    return items, steps, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-scripted", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--items", type=int, default=16, help="embedded run: seed tasks refined")
    parser.add_argument("--iterations", type=int, default=2, help="embedded run")
    parser.add_argument("--max-tokens", type=int, default=128, help="embedded run")
    parser.add_argument("--concurrency", type=int, default=8, help="embedded run: items in flight")
    parser.add_argument("--rm", default=str(TRAINED_RM),
                        help="embedded run: RM scoring the edits (absent: no RM row)")
    args = parser.parse_args()
    rm = args.rm if Path(args.rm, "config.json").exists() else None
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scripted:
            backend = ScriptedBackend(scripted_agents(0.6))
            config = CoevolConfig(backends={"default": {"kind": "scripted"}}, iterations=3, limit=20)
            started = time.monotonic()
            result = run_coevol(SEEDS, Path(tmp) / "scripted.jsonl", config,
                                backends=CoevolBackends(backend, backend, backend, backend, backend), progress=False,
                                handle_sigint=False)
            results["scripted (judge accepts 60%)"] = summarise(result, Path(tmp) / "scripted.jsonl",
                                                                time.monotonic() - started)
        if not args.skip_embedded:
            config = CoevolConfig(backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8,
                                                          "cache": False}},
                                  iterations=args.iterations, limit=args.items, max_tokens=args.max_tokens,
                                  max_words=80, max_reasks=1, concurrency=args.concurrency, rm=rm)
            output = Path(tmp) / "embedded.jsonl"
            started = time.monotonic()
            result = run_coevol(SEEDS, output, config, progress=False, handle_sigint=False)
            embedded = summarise(result, output, time.monotonic() - started)
            failed_items, failed_steps, examples = parse_failures(output)
            embedded.update({"items_with_parse_failure": failed_items, "parse_failures_by_step": dict(failed_steps),
                             "failure_examples": examples, "items_attempted": result.summary.total,
                             "items_errored": result.summary.errors})
            results["embedded instruct model"] = embedded
    print(json.dumps(results, indent=2))
    for name, result in results.items():
        acceptance = " / ".join(f"{100 * row['rate']:.0f}%" for row in result["acceptance_by_iteration"].values())
        stops = ", ".join(f"{reason} {count}" for reason, count in result["stop_reasons"].items())
        record(f"CoEvol, {name}: LLM calls per refined item", baseline="none (absolute cost)",
               ratio=result["calls_per_item"], unit="calls per item", target="none", met=None,
               details={"summary": f"{result['tokens_per_item']:.0f} tokens per item, {result['items']} items; "
                                   f"accepted by iteration {acceptance or '-'}; stops: {stops}", **result})
    if "embedded instruct model" in results:
        embedded = results["embedded instruct model"]
        clean = embedded["items"] - embedded["items_with_parse_failure"]
        share = clean / embedded["items_attempted"] if embedded["items_attempted"] else 0.0
        steps = ", ".join(f"{step} {count}" for step, count in embedded["parse_failures_by_step"].items()) or "none"
        stops = ", ".join(f"{reason} {count}" for reason, count in embedded["stop_reasons"].items())
        record("CoEvol on the embedded instruct model: share of items refined without a parse failure",
               baseline="items in", unit="share", ratio=share, target=">= 0.80", met=share >= 0.80,
               details={"summary": f"{clean} of {embedded['items_attempted']} items without a parse failure "
                                   f"(failures by step: {steps}; turn stops: {stops}); items = the first {args.items} "
                                   f"Self-Instruct seed tasks, instruction + output (Alpaca was generated from these "
                                   f"seeds; no Alpaca file in the shared data); {args.iterations} iterations, "
                                   f"max_tokens {args.max_tokens}, debater max_words 80, 1 re-ask, "
                                   f"{args.concurrency} items in flight, no response cache", **embedded})
        if rm is None:
            print(f"no RM at {args.rm}: RM change row left out (bench/run_all --only rm_real_data trains it)")
        else:
            record_rm_change(embedded, Path(rm).name, args)


def record_rm_change(embedded: dict, rm_name: str, args: argparse.Namespace) -> None:
    """The mean RM change of the accepted edits (None when no edit was accepted) and of the refined turns."""
    edits, turns = embedded["rm_delta_accepted_edits"], embedded["rm_delta_turns"]
    edits_text = (f"{edits['n']} accepted edits, mean change {edits['mean']:+.3f}" if edits
                  else "no edit was accepted")
    turns_text = (f"refined turns ({turns['n']}): mean {turns['mean']:+.3f}, {turns['positive']} up, "
                  f"{turns['zero']} unchanged, {turns['negative']} down" if turns else "no turn scored")
    record("CoEvol on the embedded instruct model: RM score change of accepted edits",
           baseline="the turn before each edit", unit="reward difference", ratio=edits["mean"] if edits else None,
           target="none (report)", met=None,
           details={"summary": f"{edits_text}; {turns_text}; RM {rm_name}; {args.items} items, {args.iterations} "
                               f"iterations, lenient accept rule (the public code's merge of both orders)",
                    "rm_delta_accepted_edits": edits, "rm_delta_turns": turns})


if __name__ == "__main__":
    main()
