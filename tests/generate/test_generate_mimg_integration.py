"""MIMG on the shared multi-hop data: the embedded base model end to end (smoke quality), and scripted agents
with the real MiniLM neighbour sampling over the LongMIT corpus."""

from __future__ import annotations

import json

import pytest
from test_generate_mimg import FakeMimg, backends_of

from chat.config import build_config, load_yaml
from generate.mimg.config import MimgConfig
from generate.mimg.run import chains_path, qas_path, run_mimg

pytestmark = pytest.mark.slow


def test_mimg_runs_on_hotpotqa_paragraphs_with_the_embedded_model(shared_data, tmp_path):
    values = load_yaml("configs/generate/mimg-embedded-smoke.yaml")
    config = build_config(MimgConfig, {**values, "max_tokens": 32, "limit": 2})
    output = tmp_path / "mimg.jsonl"
    result = run_mimg(shared_data / "multihop" / "hotpot_dev_distractor_100.json.gz", output, config,
                      progress=False, handle_sigint=False)
    chunks = [json.loads(line) for line in qas_path(output).read_text().splitlines()]
    assert len(chunks) == 2 == result.report["chunks"]          # two paragraphs, each one short chunk
    chain_rows = [json.loads(line) for line in chains_path(output).read_text().splitlines()]
    answered = result.report["llm_calls"] + result.report["cache_hits"]   # a rerun hits the response cache
    assert answered == sum(row["usage"]["calls"] + row["usage"]["cache_hits"] for row in chunks + chain_rows) >= 2
    kept = result.report["single_hop_qas_kept"]
    assert kept == sum(qa["kept"] for row in chunks for qa in row["qas"])
    assert result.report["multi_hop_qas_kept"] == (len(output.read_text().splitlines()) if output.exists() else 0)


def test_minilm_neighbours_drive_merges_over_the_longmit_corpus(shared_data, tmp_path):
    roles, backend = backends_of(FakeMimg())
    config = MimgConfig(backends={"default": {"kind": "scripted"}}, limit=3, max_seeds=3, max_hops=3,
                        group_size=2, context_tokens=6000)
    output = tmp_path / "mimg.jsonl"
    result = run_mimg(shared_data / "multihop" / "longmit_text_corpus_200.jsonl.gz", output, config, backends=roles,
                      progress=False, handle_sigint=False)
    chains = [json.loads(line) for line in chains_path(output).read_text().splitlines()]
    assert len(chains) == 3 * 2
    for chain in chains:
        similarities = [n["similarity"] for n in chain["neighbours"]]
        assert similarities == sorted(similarities, reverse=True) and all(-1.0 <= s <= 1.0001 for s in similarities)
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == result.report["multi_hop_qas_kept"] > 0
    assert all(len(set(r["doc_ids"])) >= 2 for r in records if r["meta"]["chain"] == "crossdoc")
    assert all(len(r["doc_ids"]) == 1 for r in records if r["meta"]["chain"] == "indoc")
    for chain in chains:                                   # crossdoc neighbours come from the seed's group
        assert len(chain["doc_group"]) <= 2
    for record in records:
        assert set(record["doc_ids"]) <= set(record["meta"]["passage_ids"]) <= set(record["meta"]["doc_group"])
    assert result.report["llm_calls"] == backend.calls
