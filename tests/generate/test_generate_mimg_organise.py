"""MIMG document organisation (groups by a kNN walk), group-built training contexts, the no-merger ablation and
the planned calls of each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_generate_mimg import FakeMimg, backends_of, config, fake_embed

from chat.errors import ConfigError
from generate.documents import Chunk
from generate.mimg.algorithm import (DocumentGroups, GroupContext, SingleHopQA, document_openings, expected_calls,
                                     nearest_neighbours, organise_documents)
from generate.mimg.run import chains_path, run_mimg
from generate.mimg.steps import format_training_prompt

# -- step 1: organise documents ---------------------------------------------------------------------------


def unit(*rows):
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_walk_steps_to_the_nearest_unvisited_document():
    vectors = unit([1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9], [0.8, 0.3])
    assert organise_documents(vectors, group_size=21, neighbours=9) == [[0, 2, 4, 3, 1]]


def test_a_group_ends_at_group_size_and_the_next_starts_at_the_first_unvisited_document():
    vectors = unit([1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9], [0.8, 0.3])
    assert organise_documents(vectors, group_size=2, neighbours=9) == [[0, 2], [1, 3], [4]]


def test_a_group_ends_when_none_of_the_nearest_documents_is_unvisited():
    vectors = unit([1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9])
    assert organise_documents(vectors, group_size=21, neighbours=1) == [[0, 2], [1, 3]]


def test_documents_are_embedded_by_title_and_first_chunk():
    chunks = [Chunk("a#0", "a", 0, "Alpha", "First of a."), Chunk("a#1", "a", 1, "Alpha", "Second of a."),
              Chunk("b#0", "b", 0, "", "First of b.")]
    assert document_openings(chunks) == {"a": "Alpha\nFirst of a.", "b": "First of b."}
    embedded = []

    def embed(texts):
        embedded.append(texts)
        return unit([1, 0], [0, 1])

    groups = DocumentGroups.embedded(chunks, embed, config(group_size=1))
    assert embedded == [["Alpha\nFirst of a.", "First of b."]]
    assert groups.groups == [["a"], ["b"]] and groups.members("b") == ["b"]


def test_crossdoc_neighbours_come_from_the_seed_group_only():
    vectors = unit([1, 0], [0.99, 0.14], [0.9, 0.44], [0, 1])
    docs, groups = ["a", "b", "c", "d"], [0, 1, 0, 0]
    assert [n.index for n in nearest_neighbours(vectors, docs, 0, 3, "crossdoc")] == [1, 2, 3]
    assert [n.index for n in nearest_neighbours(vectors, docs, 0, 3, "crossdoc", groups=groups)] == [2, 3]


# -- step 6: the training context from the group ---------------------------------------------------------------

def words(n, tag):
    """`n` words of 3 characters: with their spaces, n approximate tokens (characters / 4, rounded up)."""
    return " ".join(f"{tag}{i:02d}" for i in range(n))


GROUP_CHUNKS = [Chunk("p#0", "p", 0, "P", words(40, "p")), Chunk("q#0", "q", 0, "Q", words(40, "q")),
                Chunk("q#1", "q", 1, "Q", words(20, "r")), Chunk("s#0", "s", 0, "S", words(80, "s")),
                Chunk("t#0", "t", 0, "T", words(40, "t"))]            # 40, 40 + 20, 80, 40 approximate tokens
GROUPS = DocumentGroups([["q", "s", "p", "t"]])


def source(doc):
    return SingleHopQA(f"{doc}#0/q1", doc, f"{doc}#0", f"About {doc}?", "Long.", "short", 8)


def test_the_context_is_the_whole_group_in_walk_order_without_a_budget():
    context = GroupContext.of_chunks(GROUPS, GROUP_CHUNKS).for_record("r", [source("p")], config())
    assert context.ids == ["q", "s", "p", "t"] and context.doc_group == ["q", "s", "p", "t"]
    assert context.passages[0] == {"title": "Q", "text": words(40, "q") + "\n\n" + words(20, "r")}
    assert (context.kind, context.tokens) == ("group", 60 + 80 + 40 + 40)


def test_the_budget_keeps_the_sources_and_fills_with_members_that_fit_in_group_order():
    builder = GroupContext.of_chunks(GROUPS, GROUP_CHUNKS)
    context = builder.for_record("r", [source("t"), source("p")], config(context_tokens=150))
    assert context.ids == ["q", "p", "t"] and context.tokens == 140          # s (80) does not fit, q (60) does
    alone = builder.for_record("r", [source("s")], config(context_tokens=10))
    assert alone.ids == ["s"] and alone.tokens == 80                          # the source stays over budget
    assert alone.meta() == {"context": "group", "passage_ids": ["s"], "doc_group": ["q", "s", "p", "t"],
                            "context_tokens": 80}


# -- the run ---------------------------------------------------------------------------------------------

TOPICS = ["river", "piano", "river", "piano"]


def write_topic_docs(path):
    rows = [{"id": f"d{i}", "content": f"Org{i} was founded in {1900 + i} by the {topic} guild.\n\n"
                                       f"Org{i} was led by Person{i}."} for i, topic in enumerate(TOPICS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def topic_embed(texts):
    """Documents (their openings name a guild) by topic; QAs by their words (fake_embed)."""
    if all("guild" in text for text in texts):
        return unit(*([1, 0] if "river" in text else [0, 1] for text in texts))
    return fake_embed(texts)


def run(tmp_path, agents, **values):
    roles, backend = backends_of(agents)
    output = tmp_path / "mimg.jsonl"
    result = run_mimg(write_topic_docs(tmp_path / "docs.jsonl"), output, config(chunk_tokens=12, **values),
                      backends=roles, embed=topic_embed, progress=False, handle_sigint=False)
    records = [json.loads(line) for line in output.read_text().splitlines()]
    return result, records, backend


def document_text(i):
    return f"Org{i} was founded in {1900 + i} by the {TOPICS[i]} guild.\n\nOrg{i} was led by Person{i}."


def test_organised_run_chains_within_groups_and_builds_contexts_from_them(tmp_path):
    result, records, _ = run(tmp_path, FakeMimg(), group_neighbours=1, max_hops=2, chains=["crossdoc"])
    chains = [json.loads(line) for line in chains_path(tmp_path / "mimg.jsonl").read_text().splitlines()]
    group_of = {"d0": ["d0", "d2"], "d2": ["d0", "d2"], "d1": ["d1", "d3"], "d3": ["d1", "d3"]}
    for chain in chains:
        doc = chain["seed_qa_id"].split("#")[0]
        assert chain["doc_group"] == group_of[doc]
        assert {n["qa_id"].split("#")[0] for n in chain["neighbours"]} <= set(group_of[doc]) - {doc}
    assert records and result.report["multi_hop_qas_kept"] == len(records)
    for record in records:
        group = group_of[record["doc_ids"][0]]
        assert set(record["doc_ids"]) == set(group)
        assert (record["meta"]["context"], record["meta"]["doc_group"], record["meta"]["passage_ids"]) == (
            "group", group, group)
        passages = [{"title": "", "text": document_text(int(doc[1]))} for doc in group]
        assert record["prompt"] == format_training_prompt(passages, record["question"])


def test_the_no_merger_ablation_writes_single_hop_records_without_merge_calls(tmp_path):
    agents = FakeMimg()
    result, records, backend = run(tmp_path, agents, multi_hop_merge=False, group_neighbours=1)
    assert agents.calls["merge"] == 0 and backend.calls == 8 * (1 + 2 * 2)   # 8 chunks: question + 2 x (answer, verify)
    assert not chains_path(tmp_path / "mimg.jsonl").exists() and result.multi_hop is None
    assert len(records) == 16 == result.report["training_records"] == result.report["single_hop_qas_kept"]
    assert result.report["hop_distribution"] == {"1": 16} and result.report["multi_hop_qas_kept"] == 0
    record = {r["id"]: r for r in records}["d0#0/q1|single_hop|1"]
    assert (record["hops"], record["meta"]["chain"], record["source_qa_ids"]) == (1, "single_hop", ["d0#0/q1"])
    assert record["answer"] == record["rationale"][0] == "The answer to 'When was Org0 founded?' is stated."
    assert record["meta"]["passage_ids"] == record["meta"]["doc_group"] == ["d0", "d2"]
    calls = backend.calls
    again = run(tmp_path, agents, multi_hop_merge=False, group_neighbours=1)
    assert backend.calls == calls and again[1] == records                    # resumed: nothing asked or rewritten


# -- config and planned calls -----------------------------------------------------------------------------------

def test_distractors_and_the_context_budget_each_need_their_context_mode():
    with pytest.raises(ConfigError, match="distractor_chunks"):
        config(distractor_chunks=2)
    with pytest.raises(ConfigError, match="context_tokens"):
        config(organise_documents=False, context_tokens=1000)
    with pytest.raises(ConfigError, match="group_size"):
        config(group_size=0)


def test_expected_calls_leave_out_merges_in_the_ablation_and_organising_adds_none():
    full = expected_calls(config(max_questions=2, max_hops=3), documents=4, input_tokens=100)
    ablation = expected_calls(config(max_questions=2, max_hops=3, multi_hop_merge=False), 4, 100)
    unorganised = expected_calls(config(max_questions=2, max_hops=3, organise_documents=False), 4, 100)
    assert ablation.calls == 4 * (1 + 2 * 2) == ablation.max_calls / 3
    assert full.calls == unorganised.calls == 4 * 5 + 4 * 2 * 2 * (3 - 1) * 2
