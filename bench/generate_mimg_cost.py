"""Bench: MIMG pass rate per agent, hop distribution, and LLM calls / tokens per kept multi-hop QA.

1. Scripted agents with the real MiniLM neighbour sampling (structure, not quality) over the first 6 documents of
   the LongMIT text corpus (~2k-token chunks): every agent answers with its JSON object; the questioner writes 3
   questions per chunk of which one carries a dangling reference ("this passage"); the verifier scores each QA
   3-10 at random (seeded by the request), so ~75% pass the threshold 7 wherever it is asked.
2. The embedded model (Qwen2.5-Coder-0.5B-Instruct, `local` backend, 8 requests per batch, no response cache) on
   the first 8 LongMIT corpus documents: ~500-token chunks, 2 questions per chunk, 2-hop merges from 32 seed QAs
   along both chain kinds (in-document and cross-document neighbours), max_tokens 384 (128 cut most merges' JSON
   inside a string), 8 chunks or chains in flight: kept multi-hop QAs per document (target >= 1 per 2 documents)
   and the drops of each stage. The run stays in `--keep` (default runs/bench/mimg-embedded, started over each
   time) for bench/generate_mimg_quality.py, which rates a sample of it.
Run: .venv/bin/python bench/generate_mimg_cost.py [--skip-embedded | --skip-scripted] [--docs 8 ...]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.backends.scripted import ScriptedBackend  # noqa: E402
from chat.runner import read_records  # noqa: E402
from generate.mimg.algorithm import MimgBackends  # noqa: E402
from generate.mimg.config import MimgConfig  # noqa: E402
from generate.mimg.run import chains_path, qas_path, run_mimg  # noqa: E402
from generate.prompts import render  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multihop"
#: Where the embedded run stays for bench/generate_mimg_quality.py.
KEPT_RUN = Path(__file__).resolve().parents[1] / "runs" / "bench" / "mimg-embedded"
MARKS = {role: render(f"mimg_{role}_system", max_questions=3, hops=2).splitlines()[0]
         for role in ("question", "answer", "verify", "merge")}


def scripted_agents(pass_scores=range(3, 11)):
    """Every agent answers with the JSON object of its generate-v3 step (the scripted backend validates it)."""
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


def failure_examples(output: Path, limit: int = 4) -> list[str]:
    """The first few parse-failure details of a run: question replies, answers and verifications (stage 1 sink),
    merges and their verifications (stage 2 sink)."""
    details = [row["question_failure"] for row in read_records(qas_path(output)) if "question_failure" in row]
    details += [qa["detail"] for row in read_records(qas_path(output)) for qa in row.get("qas", [])
                if qa.get("detail")]
    details += [step["detail"] for row in read_records(chains_path(output)) for step in row["steps"]
                if step.get("detail")]
    return [detail[:200] for detail in details[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-scripted", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--docs", type=int, default=8, help="embedded run: the first N LongMIT documents")
    parser.add_argument("--chunk-tokens", type=int, default=500, help="embedded run")
    parser.add_argument("--max-questions", type=int, default=2, help="embedded run: questions per chunk")
    parser.add_argument("--max-seeds", type=int, default=32, help="embedded run: seed QAs merged from")
    parser.add_argument("--max-tokens", type=int, default=384, help="embedded run")
    parser.add_argument("--keep", type=Path, default=KEPT_RUN, help="embedded run: its run directory (started over)")
    args = parser.parse_args()
    corpus = DATA / "longmit_text_corpus_200.jsonl.gz"
    results = {}
    embedded_name = f"embedded instruct model, LongMIT corpus ({args.docs} docs)"
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scripted:
            backend = ScriptedBackend(scripted_agents())
            config = MimgConfig(backends={"default": {"kind": "scripted"}}, limit=6)
            started = time.monotonic()
            result = run_mimg(corpus, Path(tmp) / "scripted.jsonl", config,
                              backends=MimgBackends(backend, backend, backend, backend), progress=False,
                              handle_sigint=False)
            results["scripted agents + MiniLM, LongMIT corpus (6 docs)"] = {
                **result.report, "seconds": round(time.monotonic() - started, 1)}
        if not args.skip_embedded:
            config = MimgConfig(backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8,
                                                        "cache": False}},
                                limit=args.docs, chunk_tokens=args.chunk_tokens, max_questions=args.max_questions,
                                max_hops=2, max_seeds=args.max_seeds, max_tokens=args.max_tokens, max_reasks=1,
                                concurrency=8)
            started = time.monotonic()
            args.keep.mkdir(parents=True, exist_ok=True)
            output = args.keep / "mimg.jsonl"
            result = run_mimg(corpus, output, config, progress=False, handle_sigint=False, overwrite=True)
            (args.keep / "bench.json").write_text(json.dumps({"corpus": str(corpus), "docs": args.docs,
                                                              "chunk_tokens": args.chunk_tokens,
                                                              "max_tokens": args.max_tokens}))
            results[embedded_name] = {**result.report, "documents": args.docs,
                                      "failure_examples": failure_examples(output),
                                      "seconds": round(time.monotonic() - started, 1)}
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
    if embedded_name in results:
        report = results[embedded_name]
        per_document = report["multi_hop_qas_kept"] / args.docs
        drops = "; ".join(f"{stage}: " + ", ".join(f"{reason} {count}" for reason, count in counts.items())
                          for stage, counts in report["dropped"].items() if counts) or "none"
        rates = "; ".join(f"{name.replace('_', ' ')} {rate['passed']}/{rate['total']}"
                          for name, rate in report["pass_rates"].items())
        record("MIMG on the embedded instruct model: kept multi-hop QAs per LongMIT document",
               baseline="documents in", unit="per document", ratio=per_document, target=">= 0.50",
               met=per_document >= 0.5,
               details={"summary": f"{report['multi_hop_qas_kept']} multi-hop QAs kept from {args.docs} documents "
                                   f"({report['chunks']} chunks, {report['single_hop_qas_kept']} single-hop QAs kept); "
                                   f"pass: {rates}; dropped: {drops}; chunk_tokens {args.chunk_tokens}, "
                                   f"{args.max_questions} questions per chunk, 2-hop merges from {args.max_seeds} "
                                   f"seeds (indoc + crossdoc), max_tokens {args.max_tokens}, 1 re-ask, no response "
                                   f"cache", **report})


if __name__ == "__main__":
    main()
