"""RewardBench v1 / v2 evaluation: reading, subset and section scores (hand-computed), the Ties rule, the CLI."""

from __future__ import annotations

import gzip
import json
import math
import re

import pytest

from chat.errors import ConfigError, InputError
from rm import rewardbench
from rm.rewardbench import (PRIOR_SETS_KEY, V1, V2, evaluate_benchmark, read_benchmark, score_items, ties_score)
from rm_helpers import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "rewardbench"
V1_FILE = FIXTURES / "rewardbench_v1.jsonl"
V2_FILE = FIXTURES / "rewardbench_v2.jsonl"

# Hand-computed from the fixtures: every reply says "reward=X" and the fake scorer returns X.
CHAT = (1.0 * 100 + 0.5 * 40) / (100 + 40)            # alpacaeval-easy 2/2, mt-bench-med 1/2
CHAT_HARD = (0.0 * 37 + 1.0 * 100) / (37 + 100)       # mt-bench-hard 0/1, llmbar-natural 1/1
SAFETY = 0.5                                          # donotanswer: 1 right, 1 tie (a tie is wrong)
REASONING = (1.0 * 984 + 0.5 * 164) / (984 + 164)     # math-prm 1/1 (weight 984), hep-python 1/2
PRIOR = (1.0 + 0.0) / 2                               # shp 1/1, anthropic_helpful 0/1
SCORE = (2 * CHAT + 2 * CHAT_HARD + 2 * SAFETY + 2 * REASONING + PRIOR) / 9
# Ties: ref accuracy 1/2, tied accuracy 2/2; tied margin > spread on prompt 1 only; the hard margin never.
TIES = 0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.0 + 0.01 * (math.tanh(1 / 2 - 1) + math.tanh(-1 / 1 - 1)) / 2
RB2_SCORE = (0.5 + 1.0 + TIES) / 3                    # Factuality 1/2, Focus 1/1, Ties


class RuleScorer:
    """A reward model stand-in whose reward is the number after `reward=` in the final reply."""

    name = "rule-scorer"

    def __init__(self):
        self.calls = 0

    def score(self, conversations):
        self.calls += 1
        return [float(re.search(r"reward=(-?[\d.]+)", c.messages[-1].content).group(1)) for c in conversations]

    def score_pairs(self, pairs):
        return [tuple(self.score([p.chosen, p.rejected])) for p in pairs]


def test_v1_layout_and_items_are_read():
    data = read_benchmark(str(V1_FILE))
    assert data.layout == V1 and len(data.items) == 13
    first = data.items[0]
    assert (first.id, first.subset, first.prompt) == ("1", "alpacaeval-easy", [{"role": "user", "content": "Name a colour."}])
    assert first.chosen == ["Blue. reward=2"] and first.rejected == ["No. reward=1"]
    multi_turn = data.items[11]
    assert multi_turn.id == "line-12" and [m["role"] for m in multi_turn.prompt] == ["user", "assistant", "user"]
    assert multi_turn.conversations()[0].messages[-1].content == "A pun reward=3"


def test_v1_subsets_and_sections_match_the_hand_computed_values():
    data = read_benchmark(str(V1_FILE))
    scorer = RuleScorer()
    result = evaluate_benchmark(data, score_items(scorer, data.items), model="m")
    assert scorer.calls == 1  # every reply in one batched call
    assert result.subsets == {"alpacaeval-easy": 1.0, "mt-bench-med": 0.5, "mt-bench-hard": 0.0,
                              "llmbar-natural": 1.0, "donotanswer": 0.5, "math-prm": 1.0, "hep-python": 0.5,
                              "shp": 1.0, "anthropic_helpful": 0.0}
    assert result.sections == pytest.approx({"Chat": CHAT, "Chat Hard": CHAT_HARD, "Safety": SAFETY,
                                             "Reasoning": REASONING, PRIOR_SETS_KEY: PRIOR, "Score": SCORE}, abs=1e-12)


def test_v1_score_without_prior_sets_is_the_mean_of_the_sections():
    code = {f"hep-{language}": 0.75 for language in ("cpp", "go", "java", "js", "python", "rust")}
    sections = rewardbench.v1_sections({"alpacaeval-easy": 1.0, "mt-bench-hard": 0.0, "donotanswer": 0.5,
                                        "math-prm": 0.25, **code})
    assert sections["Reasoning"] == pytest.approx(0.5)  # math and all of code weigh one half each
    assert sections["Score"] == pytest.approx((1.0 + 0.0 + 0.5 + 0.5) / 4)
    assert PRIOR_SETS_KEY not in sections


def test_v2_best_of_4_and_ties_match_the_hand_computed_values():
    data = read_benchmark(str(V2_FILE))
    assert data.layout == V2
    result = evaluate_benchmark(data, score_items(RuleScorer(), data.items), model="m")
    assert result.subsets == pytest.approx({"Factuality": 0.5, "Focus": 1.0, "Ties": TIES}, abs=1e-12)
    assert result.sections == pytest.approx({"Score": RB2_SCORE}, abs=1e-12)
    assert result.outcomes[:3] == [1.0, 0.0, 1.0] and result.outcomes[3:] == [None] * 4


def test_ties_needs_ref_and_tied_ids():
    data = read_benchmark(str(V2_FILE))
    ties = [item for item in data.items if item.subset == "Ties"]
    ties[0].id = "7"
    with pytest.raises(ConfigError, match="ref:N or tied:N"):
        ties_score(ties, [[1.0, 0.0, 0.0]] * len(ties))


def test_parquet_and_gzip_sources_read_the_same_items(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in V2_FILE.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rb2.parquet")
    with gzip.open(tmp_path / "rb1.jsonl.gz", "wb") as handle:
        handle.write(V1_FILE.read_bytes())
    assert read_benchmark(str(tmp_path / "rb2.parquet")).items == read_benchmark(str(V2_FILE)).items
    assert read_benchmark(str(tmp_path / "rb1.jsonl.gz")).items == read_benchmark(str(V1_FILE)).items


def test_bad_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(V2_FILE.read_text().splitlines()[0] + "\n"
                    + json.dumps({"subset": "Math", "prompt": "p", "chosen": ["a"], "rejected": "b"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: rejected: expected a non-empty list of strings"):
        read_benchmark(str(path))
    path.write_text(json.dumps({"subset": "Math", "prompt": "p", "chosen": ["a", "b"], "rejected": ["c"]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: chosen: 2 chosen replies outside the Ties subset"):
        read_benchmark(str(path))


@pytest.fixture
def fake_model(monkeypatch):
    from rm.model import RewardModel

    monkeypatch.setattr(RewardModel, "load", classmethod(lambda cls, *a, **k: RuleScorer()))


def test_cli_writes_leaderboard_json_for_v1(run_cli, fake_model, tmp_path):
    code, out, _ = run_cli("rm", "eval", "--model", "org/rm", "--data", V1_FILE, "-o", tmp_path, "--bootstrap", "10")
    assert code == 0 and "| Chat Hard |" in out
    written = json.loads((tmp_path / "rewardbench.json").read_text())
    assert written["model"] == "org/rm" and written["model_type"] == "Seq. Classifier"
    assert written["chat_template"] == "tokenizer"
    assert written["hep-python"] == 0.5 and written["Score"] == pytest.approx(SCORE)
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] == pytest.approx(8.5 / 13)  # the pairs report credits a tie 0.5
    lines = (tmp_path / "rewardbench_scores.jsonl").read_text().splitlines()
    assert json.loads(lines[7]) == {"id": "8", "subset": "donotanswer", "scores": [1.0, 1.0], "num_correct": 1,
                                    "results": 0.0}


def test_cli_v2_and_hub_id_with_split(run_cli, fake_model, tmp_path, monkeypatch):
    import chat.formats.sources as sources

    requested = {}

    def hub_rows(dataset_id, split):
        requested.update(id=dataset_id, split=split)
        for number, line in enumerate(V2_FILE.read_text().splitlines(), 1):
            yield sources.SourceRow(number, json.loads(line))

    monkeypatch.setattr(sources, "_hub_rows", hub_rows)
    code, out, _ = run_cli("rm", "eval", "--model", "org/rm", "--data", "allenai/reward-bench-2", "--split", "test",
                           "-o", tmp_path)
    assert code == 0 and requested == {"id": "allenai/reward-bench-2", "split": "test"}
    written = json.loads((tmp_path / "rewardbench.json").read_text())
    assert written["Ties"] == pytest.approx(TIES) and written["Score"] == pytest.approx(RB2_SCORE)
    assert not (tmp_path / "report.json").exists()


def test_cli_ordinary_pairs_still_take_the_pairs_path(run_cli, fake_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "reward=1"}],
                                "rejected": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "reward=0"}]}) + "\n")
    code, _, _ = run_cli("rm", "eval", "--model", "m", "--data", data, "-o", tmp_path / "out", "--bootstrap", "10")
    assert code == 0 and (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / "rewardbench.json").exists()
    code, _, err = run_cli("rm", "eval", "--model", "m", "--data", data, "--benchmark", "rewardbench", "-o", tmp_path)
    assert code == 2 and "not a RewardBench row" in err


def test_limit_reads_only_the_first_items():
    items = read_benchmark(str(V1_FILE), limit=3).items
    assert [item.id for item in items] == ["1", "2", "3"]
