"""Bench: CoEvol LLM calls and tokens per refined item and acceptance rate per iteration.

1. Scripted agents (structure, not quality): every agent answers in its format (JSON for the judge and advisor);
   the judge prefers the edit in both orders with probability 0.6 per decision (seeded by the request), so the
   measured cost follows from the accept/stop rules. 20 Self-Instruct seed tasks (instruction + output), 3
   iterations, LLM judge.
2. The embedded model (Qwen2.5-Coder-0.5B-Instruct, smoke quality) on 4 seed tasks, 3 iterations, max_tokens 64:
   what a small model costs and how often an edit survives.
Run: .venv/bin/python bench/generate_coevol_cost.py [--skip-embedded | --skip-scripted]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.backends.scripted import ScriptedBackend  # noqa: E402
from generate.coevol import CoevolBackends  # noqa: E402
from generate.coevol_config import CoevolConfig  # noqa: E402
from generate.coevol_run import coevol_report, run_coevol  # noqa: E402
from generate.prompts import render  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "seeds" / "self_instruct_seed_tasks.jsonl"
JUDGE_MARK = render("coevol_judge_system").splitlines()[0]
ADVISOR_MARK = render("coevol_advisor_system", max_suggestions=3).splitlines()[0]
EDITOR_MARK = render("coevol_editor_system").splitlines()[0]


def scripted_agents(accept_probability: float):
    """Judge and advisor answer with the JSON objects of their generate-v2 steps (the scripted backend validates
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
            "acceptance_by_iteration": report["acceptance_by_iteration"], "seconds": round(seconds, 1)}


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "--skip-scripted" not in sys.argv:
            backend = ScriptedBackend(scripted_agents(0.6))
            config = CoevolConfig(backends={"default": {"kind": "scripted"}}, iterations=3, limit=20)
            started = time.monotonic()
            result = run_coevol(SEEDS, Path(tmp) / "scripted.jsonl", config,
                                backends=CoevolBackends(backend, backend, backend, backend, backend), progress=False,
                                handle_sigint=False)
            results["scripted (judge accepts 60%)"] = summarise(result, Path(tmp) / "scripted.jsonl",
                                                                time.monotonic() - started)
        if "--skip-embedded" not in sys.argv:
            config = CoevolConfig(backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8,
                                                          "cache": False}},
                                  iterations=3, limit=4, max_tokens=64, max_reasks=1, concurrency=4)
            started = time.monotonic()
            result = run_coevol(SEEDS, Path(tmp) / "embedded.jsonl", config, progress=False, handle_sigint=False)
            results["embedded Qwen2.5-Coder-0.5B-Instruct (smoke)"] = summarise(result, Path(tmp) / "embedded.jsonl",
                                                                      time.monotonic() - started)
    print(json.dumps(results, indent=2))
    for name, result in results.items():
        acceptance = " / ".join(f"{100 * row['rate']:.0f}%" for row in result["acceptance_by_iteration"].values())
        stops = ", ".join(f"{reason} {count}" for reason, count in result["stop_reasons"].items())
        record(f"CoEvol, {name}: LLM calls per refined item", baseline="none (absolute cost)",
               ratio=result["calls_per_item"], unit="calls per item", target="none", met=None,
               details={"summary": f"{result['tokens_per_item']:.0f} tokens per item, {result['items']} items; "
                                   f"accepted by iteration {acceptance or '-'}; stops: {stops}", **result})


if __name__ == "__main__":
    main()
