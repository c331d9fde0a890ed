"""MIMG: chunking, step parsers, dangling-reference filter, neighbour sampling, exact prompts, merge chains, resume."""

from __future__ import annotations

import asyncio
import hashlib
import json

import numpy as np
import pytest

from chat.agents import ParseError
from chat.backends.scripted import ScriptedBackend
from chat.conversation import Document
from chat.token_estimate import approx_tokens
from generate.documents import Chunk, chunk_document
from generate.mimg.algorithm import MimgBackends, SingleHopQA, merge_chain, nearest_neighbours, single_hop_chunk
from generate.mimg.config import MimgConfig
from generate.mimg.run import chains_path, qas_path, run_mimg
from generate.mimg.steps import (ANSWER_FORMAT, MERGE_FORMAT, VERIFY_FORMAT, dangling_reference, format_answer_input,
                                 format_merge_input, format_question_input, format_verify_input, parse_answer_output,
                                 parse_merge_output, parse_question_output, parse_verify_output, question_format)
from generate.prompts import render

MARKS = {role: render(f"mimg_{role}_system", max_questions=3, hops=2).splitlines()[0]
         for role in ("question", "answer", "verify", "merge")}


def role_of(messages):
    for role, mark in MARKS.items():
        if messages[0]["content"].startswith(mark):
            return role
    return "other"


class FakeMimg:
    """Agents replying with their JSON schemas: two questions per chunk naming the chunk's first word (and one
    dangling), answers echoing the question, verification `score(messages)` (default 8), merges joining the
    questions with "and". `formats[role]` collects each request's response_format."""

    def __init__(self, score=lambda messages: 8, **overrides):
        self.score = score
        self.overrides = overrides
        self.calls = {role: 0 for role in (*MARKS, "other")}
        self.formats = {role: [] for role in self.calls}

    def __call__(self, messages, params):
        role = role_of(messages)
        self.calls[role] += 1
        self.formats[role].append(params["response_format"])
        if role in self.overrides:
            value = self.overrides[role]
            return value(messages) if callable(value) else value
        text = messages[1]["content"]
        if role == "question":
            topic = text.split(":\n", 1)[1].split()[0]
            return json.dumps({"questions": [f"When was {topic} founded?", f"Who led {topic}?",
                                             "What does this passage say?"]})
        if role == "answer":
            question = text.split("Question:\n")[1].split("\n")[0]
            return json.dumps({"answer": f"The answer to '{question}' is stated.",
                               "short_answer": f"fact of {question[:-1]}"})
        if role == "verify":
            return json.dumps({"score": self.score(messages)})
        if role == "merge":
            first = text.split("):\n")[1].split("\n")[0]
            second = text.split("New question:\n")[1].split("\n")[0]
            return json.dumps({"question": f"{first[:-1]} and {second}", "answer": "Step 1 ... Step 2 ... final."})
        return "unexpected"


def fake_embed(texts):
    """Bag-of-words vectors (hashed into 64 dims), unit length: similar wording, similar vectors."""
    vectors = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def config(**values):
    return MimgConfig(**{"backends": {"default": {"kind": "scripted"}}, **values})


def backends_of(agents):
    backend = ScriptedBackend(agents)
    return MimgBackends(backend, backend, backend, backend), backend


# -- chunking -------------------------------------------------------------------------------------------

def test_chunks_pack_paragraphs_up_to_the_token_budget():
    paragraphs = [" ".join(f"w{p}x{i}" for i in range(30)) for p in range(5)]   # 30 words = 40 tokens each
    chunks = chunk_document(Document("d", "\n\n".join(paragraphs), "Title"), chunk_tokens=100)
    assert [c.text.count("\n\n") + 1 for c in chunks] == [2, 2, 1]
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2"] and all(c.title == "Title" for c in chunks)
    assert all(approx_tokens(c.text) <= 100 for c in chunks)


def test_an_over_long_paragraph_is_split_at_sentences_then_words():
    text = "Short one. " + " ".join(["word"] * 200) + ". Tail sentence."
    chunks = chunk_document(Document("d", text), chunk_tokens=60)
    assert all(approx_tokens(c.text) <= 60 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


# -- parsers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("question", ["What does this passage describe?", "According to the text, who won?",
                                      "Who is mentioned above?", "What did the author claim?",
                                      "Which city is named in the given article?"])
def test_dangling_references_are_found(question):
    assert dangling_reference(question) is not None


@pytest.mark.parametrize("question", ["When was the Eiffel Tower completed?", "Who wrote The Text of Light?",
                                      "How many people live in Paris following the 2020 census?"])
def test_self_contained_questions_pass(question):
    assert dangling_reference(question) is None


def test_question_parser_caps_rejects_dangling_and_duplicates():
    text = "QUESTIONS:\n1. Who founded Rome?\n2. What is this passage about?\n3. who founded rome\n4. Extra?"
    parsed = parse_question_output(text, 3)
    assert parsed.questions == ["Who founded Rome?"]
    assert [r["reason"] for r in parsed.rejected] == ["dangling reference: 'this passage'", "duplicate"]
    with pytest.raises(ParseError):
        parse_question_output("QUESTIONS:\n\n", 3)


def test_parsers_read_the_json_objects_of_their_schemas():
    parsed = parse_question_output(json.dumps({"questions": ["Who founded Rome?", "What is this passage about?",
                                                             "who founded rome", "1 1 1 1 1 1 1 1", "Extra?"]}), 4)
    assert parsed.questions == ["Who founded Rome?"]
    assert [r["reason"] for r in parsed.rejected] == ["dangling reference: 'this passage'", "duplicate",
                                                      "degenerate_text"]
    with pytest.raises(ParseError, match="no questions"):
        parse_question_output('{"questions": [" "]}', 3)
    reply = parse_answer_output('{"answer": "Romulus founded Rome in 753 BC.", "short_answer": "Romulus"}')
    assert (reply.answer, reply.short_answer, reply.answerable) == ("Romulus founded Rome in 753 BC.", "Romulus", True)
    assert not parse_answer_output('{"answer": "It is not said.", "short_answer": "Unanswerable."}').answerable
    assert parse_verify_output('{"score": 9}') == 9 and parse_verify_output('{"score": "7/10"}') == 7
    for bad in ('{"score": 11}', '{"score": true}', '{"score": 8.5}', '{"score": '):
        with pytest.raises(ParseError):
            parse_verify_output(bad)
    merged = parse_merge_output('{"question": "Who founded the city where X was born?", "answer": "Rome; Romulus."}',
                                ["Where was X born?"])
    assert (merged.question, merged.answer) == ("Who founded the city where X was born?", "Rome; Romulus.")
    with pytest.raises(ParseError, match="unseen passage"):
        parse_merge_output('{"question": "Who is named in the above?", "answer": "x"}', [])


def test_every_step_sends_its_json_schema():
    agents = FakeMimg()
    roles, _ = backends_of(agents)
    asyncio.run(single_hop_chunk(CHUNK, roles, config(max_questions=3)))
    asyncio.run(merge_chain(qa(1, "a"), [qa(2, "b")], CHUNKS, roles, config(), "chain"))
    assert agents.formats["question"] == [question_format(3)]
    assert agents.formats["answer"] == [ANSWER_FORMAT] * 2 and agents.formats["merge"] == [MERGE_FORMAT]
    assert agents.formats["verify"] == [VERIFY_FORMAT] * 3
    strict = {"type": "object", "additionalProperties": False}
    assert question_format(3) == {"type": "json_schema", "json_schema": {
        "name": "questions", "strict": True, "schema": {
            **strict, "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                                   "maxItems": 3}}, "required": ["questions"]}}}
    assert ANSWER_FORMAT == {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        **strict, "properties": {"answer": {"type": "string"}, "short_answer": {"type": "string"}},
        "required": ["answer", "short_answer"]}}}
    assert VERIFY_FORMAT == {"type": "json_schema", "json_schema": {"name": "score", "strict": True, "schema": {
        **strict, "properties": {"score": {"type": "integer", "enum": list(range(1, 11))}}, "required": ["score"]}}}
    assert MERGE_FORMAT == {"type": "json_schema", "json_schema": {"name": "merged_qa", "strict": True, "schema": {
        **strict, "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"]}}}


def test_answer_parser_splits_long_and_short_answers():
    reply = parse_answer_output("think\nANSWER: Rome was founded in 753 BC by Romulus.\nSHORT ANSWER: Romulus")
    assert (reply.answer, reply.short_answer, reply.answerable) == ("Rome was founded in 753 BC by Romulus.",
                                                                   "Romulus", True)
    assert not parse_answer_output("ANSWER: not there\nSHORT ANSWER: unanswerable").answerable
    with pytest.raises(ParseError):
        parse_answer_output("ANSWER: no short one")


@pytest.mark.parametrize("text, score", [("SCORE: 8", 8), ("SCORE: 10/10", 10), ("x\nSCORE: **3**.", 3)])
def test_verify_scores(text, score):
    assert parse_verify_output(text) == score


@pytest.mark.parametrize("text", ["SCORE: 11", "SCORE: high", "no score"])
def test_verify_rejects_bad_scores(text):
    with pytest.raises(ParseError):
        parse_verify_output(text)


def test_merge_parser_rejects_a_repeated_question():
    with pytest.raises(ParseError):
        parse_merge_output("QUESTION: Who founded Rome?\nANSWER: x", ["Who founded Rome?"])
    merged = parse_merge_output("QUESTION: Who founded the city where X was born?\nANSWER: X was born in Rome; "
                                "Romulus founded it.", ["Where was X born?"])
    assert merged.answer.startswith("X was born in Rome")


# -- sampling -------------------------------------------------------------------------------------------

def test_neighbours_within_and_across_documents():
    vectors = np.asarray([[1, 0], [0.9, 0.44], [0.6, 0.8], [0.99, 0.14], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = ["a", "a", "a", "b", "b"]
    assert [n.index for n in nearest_neighbours(vectors, docs, 0, 3, "indoc")] == [1, 2]
    assert [n.index for n in nearest_neighbours(vectors, docs, 0, 3, "crossdoc")] == [3, 4]
    questions = ["q", "Q", "r", "s", "t"]
    assert [n.index for n in nearest_neighbours(vectors, docs, 0, 3, "indoc", questions)] == [2]
    assert [n.index for n in nearest_neighbours(vectors, docs, 2, 3, "indoc", ["q", "q", "r", "s", "t"])] == [1]


# -- single-hop stage -----------------------------------------------------------------------------------

CHUNK = Chunk("doc#0", "doc", 0, "Acme", "Acme was founded in 1901 by Jane Roe.")


def test_single_hop_exact_prompts_and_calls():
    roles, backend = backends_of(FakeMimg())
    record = asyncio.run(single_hop_chunk(CHUNK, roles, config()))
    assert record["questions"] == 3 and record["rejected"][0]["question"] == "What does this passage say?"
    assert [qa["kept"] for qa in record["qas"]] == [True, True]
    requests = [r.messages for r in backend.requests]
    assert len(requests) == 1 + 2 * 2 == record["usage"]["calls"]
    assert requests[0] == [m.to_dict() for m in format_question_input("Acme", CHUNK.text, 3)]
    assert requests[1] == [m.to_dict() for m in format_answer_input("Acme", CHUNK.text, "When was Acme founded?")]
    answer = "The answer to 'When was Acme founded?' is stated."
    verify_requests = [r for r in requests if role_of(r) == "verify"]
    assert verify_requests[0] == [m.to_dict() for m in format_verify_input([CHUNK.passage()],
                                                                           "When was Acme founded?", answer, 1)]
    assert record["qas"][0]["short_answer"] == "fact of When was Acme founded"


def test_qas_below_the_threshold_are_dropped():
    roles, _ = backends_of(FakeMimg(score=lambda messages: 6))
    record = asyncio.run(single_hop_chunk(CHUNK, roles, config(verify_threshold=7)))
    assert [qa["dropped"] for qa in record["qas"]] == ["below_threshold", "below_threshold"]


DEGENERATE = ["In the In the In the In the In the In the", "1 1 1 1 1 1 1 1", "I\nI\nI\nI\nI\nI\nI\nI\nI"]


@pytest.mark.parametrize("degenerate", DEGENERATE)
def test_degenerate_questions_and_answers_are_dropped_with_their_reason(degenerate):
    questions = json.dumps({"questions": ["When was Acme founded?", degenerate, "Who led Acme?"]})

    def answer(messages):
        long = degenerate if "Who led" in messages[1]["content"] else "Acme was founded in 1901."
        return json.dumps({"answer": long, "short_answer": "1901"})

    roles, backend = backends_of(FakeMimg(question=questions, answer=answer))
    record = asyncio.run(single_hop_chunk(CHUNK, roles, config()))
    assert record["rejected"] == [{"question": degenerate, "reason": "degenerate_text"}]
    assert [(qa["question"], qa["kept"], qa.get("dropped")) for qa in record["qas"]] == [
        ("When was Acme founded?", True, None), ("Who led Acme?", False, "degenerate_text")]
    assert backend.calls == 1 + 2 + 1                 # the degenerate answer is never verified


def test_a_degenerate_merge_stops_the_chain():
    merges = iter([json.dumps({"question": "Q1 and Q2?", "answer": "Step 1, step 2, final."}),
                   json.dumps({"question": "Q1, Q2 and Q3?", "answer": "In the " * 10})])
    roles, backend = backends_of(FakeMimg(merge=lambda messages: next(merges)))
    steps, _, _ = asyncio.run(merge_chain(qa(1, "a"), [qa(2, "b"), qa(3, "c"), qa(4, "d")], CHUNKS, roles,
                                          config(), "chain"))
    assert [(s.hops, s.kept, s.dropped) for s in steps] == [(2, True, None), (3, False, "degenerate_text")]
    assert steps[1].detail.startswith("merge/3: 'In the In the") and backend.calls == 2 + 1


def test_unparseable_questions_are_reasked_then_the_chunk_has_no_qas():
    agents = FakeMimg(question='{"questions": [" "]}')
    roles, backend = backends_of(agents)
    record = asyncio.run(single_hop_chunk(CHUNK, roles, config(max_reasks=1)))
    assert record["qas"] == [] and "question_failure" in record and backend.calls == 2


# -- merge stage ------------------------------------------------------------------------------------------

def qa(n, doc):
    return SingleHopQA(f"{doc}#0/q{n}", doc, f"{doc}#0", f"Question {n} about {doc}?", f"Long answer {n}.",
                       f"short {n}", 8)


CHUNKS = {f"{d}#0": Chunk(f"{d}#0", d, 0, d.upper(), f"Text of {d}.") for d in "abcd"}


def test_merge_chain_grows_two_three_four_hop_qas_with_exact_prompts():
    roles, backend = backends_of(FakeMimg())
    seed, partners = qa(1, "a"), [qa(2, "b"), qa(3, "c"), qa(4, "d")]
    steps, usage, _ = asyncio.run(merge_chain(seed, partners, CHUNKS, roles, config(), "chain"))
    assert [(s.hops, s.kept) for s in steps] == [(2, True), (3, True), (4, True)]
    assert usage["calls"] == backend.calls == 6
    requests = [r.messages for r in backend.requests]
    assert requests[0] == [m.to_dict() for m in format_merge_input("Question 1 about a?", "Long answer 1.",
                                                                   "Question 2 about b?", "Long answer 2.", 2)]
    assert requests[1] == [m.to_dict() for m in format_verify_input(
        [CHUNKS["a#0"].passage(), CHUNKS["b#0"].passage()], steps[0].question, steps[0].answer, 2)]
    assert requests[2][1]["content"].startswith(f"Current question (2-hop):\n{steps[0].question}")
    assert steps[2].question == "Question 1 about a and Question 2 about b and Question 3 about c and " \
                                "Question 4 about d?"


def test_merge_chain_stops_at_the_first_failed_verification():
    roles, backend = backends_of(FakeMimg(score=lambda messages: 8 if "Passage 3" not in messages[1]["content"] else 2))
    steps, _, _ = asyncio.run(merge_chain(qa(1, "a"), [qa(2, "b"), qa(3, "c"), qa(4, "d")], CHUNKS, roles,
                                          config(), "chain"))
    assert [(s.hops, s.kept, s.dropped) for s in steps] == [(2, True, None), (3, False, "below_threshold")]
    assert backend.calls == 4


# -- the run --------------------------------------------------------------------------------------------

def write_docs(path):
    rows = [{"id": f"d{i}", "content": f"Org{i} was founded in {1900 + i}.\n\nOrg{i} was led by Person{i}."}
            for i in range(3)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_run_without_organised_documents_writes_training_records_report_and_resumes(tmp_path):
    docs = write_docs(tmp_path / "docs.jsonl")
    output = tmp_path / "mimg.jsonl"
    roles, backend = backends_of(FakeMimg())
    cfg = config(max_hops=3, chunk_tokens=10, distractor_chunks=1, organise_documents=False)
    result = run_mimg(docs, output, cfg, backends=roles, embed=fake_embed, progress=False, handle_sigint=False)
    report = result.report
    assert report["chunks"] == 6 and report["single_hop_qas_kept"] == 12
    assert report["pass_rates"]["questions_self_contained"] == {"passed": 12, "total": 18, "rate": 12 / 18}
    assert report["dropped"] == {"questions": {"dangling_reference": 6}, "single_hop": {}, "multi_hop": {}}
    assert report["hop_distribution"] == {"2": 24, "3": 12} and report["multi_hop_qas_kept"] == 36
    assert report["training_records"] == 36
    assert report["chain_kinds"] == {"crossdoc": 24, "indoc": 12}   # 2 distinct questions per document
    assert report["llm_calls"] == backend.calls
    records = [json.loads(line) for line in output.read_text().splitlines()]
    record = records[0]
    assert set(record) >= {"prompt", "answer", "hops", "source_qa_ids", "doc_ids", "rationale"}
    assert record["prompt"].endswith(f"Question: {record['question']}")
    assert record["prompt"].count("Passage ") == len(record["meta"]["passage_ids"]) == len(
        {qa_id.split("/")[0] for qa_id in record["source_qa_ids"]}) + 1   # the source chunks + 1 distractor
    assert (record["meta"]["context"], record["meta"]["doc_group"]) == ("chunks", None)
    assert record["rationale"][0].startswith("The answer to")
    indoc = [r for r in records if r["meta"]["chain"] == "indoc"]
    assert all(len(set(r["doc_ids"])) == 1 for r in indoc)
    assert all(len(r["doc_ids"]) >= 2 for r in records if r["meta"]["chain"] == "crossdoc")
    calls = backend.calls
    again = run_mimg(docs, output, cfg, backends=roles, embed=fake_embed, progress=False, handle_sigint=False)
    assert backend.calls == calls and again.single_hop.skipped_existing == 6
    assert again.multi_hop.skipped_existing == 24 and len(output.read_text().splitlines()) == 36
    assert len(qas_path(output).read_text().splitlines()) == 6 and len(chains_path(output).read_text().splitlines()) == 24
    assert json.loads((tmp_path / "mimg.jsonl.summary.json").read_text())["report"]["multi_hop_qas_kept"] == 36
