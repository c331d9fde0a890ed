"""Bench: MIMG pass rate per agent, hop distribution, and LLM calls / tokens per kept multi-hop QA.

1. Scripted agents with the real MiniLM neighbour sampling (structure, not quality) over the first 6 documents of
   the LongMIT text corpus (~2k-token chunks): every agent answers with its JSON object; the questioner writes 3
   questions per chunk of which one carries a dangling reference ("this passage"); the verifier scores each QA
   3-10 at random (seeded by the request), so ~75% pass the threshold 7 wherever it is asked.
2. The embedded model (Qwen2.5-Coder-0.5B-Instruct, smoke quality) on 4 HotpotQA paragraphs, max_tokens 96.
Run: .venv/bin/python bench/generate_mimg_cost.py [--skip-embedded | --skip-scripted]
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
from generate.mimg import MimgBackends  # noqa: E402
from generate.mimg_config import MimgConfig  # noqa: E402
from generate.mimg_run import run_mimg  # noqa: E402
from generate.prompts import render  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multihop"
MARKS = {role: render(f"mimg_{role}_system", max_questions=3, hops=2).splitlines()[0]
         for role in ("question", "answer", "verify", "merge")}


def scripted_agents(pass_scores=range(3, 11)):
    """Every agent answers with the JSON object of its generate-v2 step (the scripted backend validates it)."""
    def reply(messages, params):
        system, text = messages[0]["content"], messages[1]["content"]
        role = next(role for role, mark in MARKS.items() if system.startswith(mark))
        if role == "question":
            words = [w.strip(".,;:()\"'") for w in text.split(":\n", 1)[1].split()[:40]]
            names = [w for w in words if w[:1].isupper()][:2] or ["it"]
            return json.dumps({"questions": [f"When did {names[0]} begin?", f"Where is {names[-1]} located?",
                                             "What does this passage say about the topic?"]})
        if role == "answer":
            question = text.split("Question:\n")[1].split("\n")[0]
            return json.dumps({"answer": f"According to the record, {question[:-1].lower()} is stated.",
                               "short_answer": "x"})
        if role == "verify":
            return json.dumps({"score": random.Random(text).choice(list(pass_scores))})
        first = text.split("):\n")[1].split("\n")[0]
        second = text.split("New question:\n")[1].split("\n")[0]
        return json.dumps({"question": f"{first[:-1]}, and {second[0].lower()}{second[1:]}",
                           "answer": "Step 1: ... Step 2: ... So the answer is x."})
    return reply


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "--skip-scripted" not in sys.argv:
            backend = ScriptedBackend(scripted_agents())
            config = MimgConfig(backends={"default": {"kind": "scripted"}}, limit=6, distractor_chunks=4)
            started = time.monotonic()
            result = run_mimg(DATA / "longmit_text_corpus_200.jsonl.gz", Path(tmp) / "scripted.jsonl", config,
                              backends=MimgBackends(backend, backend, backend, backend), progress=False,
                              handle_sigint=False)
            results["scripted agents + MiniLM, LongMIT corpus (6 docs)"] = {
                **result.report, "seconds": round(time.monotonic() - started, 1)}
        if "--skip-embedded" not in sys.argv:
            config = MimgConfig(backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8,
                                                        "cache": False}},
                                limit=4, max_tokens=96, max_reasks=1, concurrency=4, max_hops=3)
            started = time.monotonic()
            result = run_mimg(DATA / "hotpot_dev_distractor_100.json.gz", Path(tmp) / "embedded.jsonl", config,
                              progress=False, handle_sigint=False)
            results["embedded Qwen2.5-Coder-0.5B-Instruct (smoke), 4 HotpotQA paragraphs"] = {
                **result.report, "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(results, indent=2))
    for name, report in results.items():
        per_kept = report.get("per_kept_multi_hop_qa") or {}
        rates = report.get("pass_rates", {})
        passes = "; ".join(f"{label} {rates[key]['passed']}/{rates[key]['total']}" for key, label in
                           (("verification_single_hop", "single-hop verify"),
                            ("verification_multi_hop", "multi-hop verify")) if key in rates)
        hops = ", ".join(f"{hop}-hop {count}" for hop, count in report.get("hop_distribution", {}).items())
        summary = (f"{per_kept['tokens']:.0f} tokens per kept QA; " if per_kept else
                   f"0 kept multi-hop QAs ({report.get('llm_calls', 0)} calls, {report.get('tokens', 0)} tokens); ")
        summary += f"{passes or 'no verification reached'}; {hops or 'no multi-hop QA'}"
        record(f"MIMG, {name}: LLM calls per kept multi-hop QA", baseline="none (absolute cost)",
               ratio=per_kept.get("llm_calls"), unit="calls per kept QA", target="none", met=None,
               details={"summary": summary, **report})


if __name__ == "__main__":
    main()
