"""`turnwise judge pairs|grade|agree` end to end with scripted backends and a stand-in RM."""

from __future__ import annotations

import asyncio
import json

from chat.runner import read_records
from judge.config import JudgeConfig
from judge.jobs import judge_pairs_job
from judge.rm_judge import RMJudge


def scripted(replies: list[str]) -> str:
    return json.dumps({"judge": {"kind": "scripted", "replies": replies}})


def test_pairs_cli_writes_one_verdict_per_pair_and_resumes(run_cli, pairs_file, tmp_path):
    output = tmp_path / "verdicts.jsonl"
    # concurrency 1: the scripted replies are consumed in order, two orders per pair
    code, out, err = run_cli("judge", "pairs", "--backends", scripted(["[[A]]", "[[B]]", "[[B]]", "[[A]]", "[[C]]", "x"]),
                             "--concurrency", "1", "--max_reasks", "0", "--input", pairs_file, "-o", output,
                             "--no-progress")
    assert code == 0, err
    records = read_records(output)
    assert [(r["id"], r["a"], r["b"], r["winner"]) for r in records] == [
        ("p0", "chosen", "rejected", "A"), ("p1", "chosen", "rejected", "B"), ("p2", "chosen", "rejected", None)]
    assert records[0]["detail"]["variant"] == "single-turn+reference"
    assert records[2]["detail"]["orders"] == {"AB": "tie", "BA": None}
    summary = json.loads(output.with_name("verdicts.jsonl.summary.json").read_text())
    assert summary["usage"]["total"]["calls"] == 6
    assert summary["extra"]["unparseable"] == 1 and summary["extra"]["winner_A"] == 1
    assert "6 calls" in out
    code, out, _ = run_cli("judge", "pairs", "--backends", scripted(["[[A]]"]), "--max_reasks", "0",
                           "--input", pairs_file, "-o", output, "--no-progress")
    assert code == 0 and "0 new records, 3 already done" in out


def test_pairs_job_with_an_rm_judge_batches_and_records_scores(pairs_file, tmp_path):
    class LengthRM:
        def score(self, conversations):
            return [float(len(c.messages[-1].content)) for c in conversations]

    output = tmp_path / "rm.jsonl"
    summary = asyncio.run(judge_pairs_job(JudgeConfig(judge="rm"), pairs_file, output, progress=False,
                                          judge=RMJudge(LengthRM(), name="rm:length")))
    records = read_records(output)
    assert summary.done == 3
    assert [r["winner"] for r in records] == ["B", "B", "B"]   # the rejected answers are longer
    assert records[0]["detail"]["score_a"] == 1.0 and records[0]["judge"] == "rm:length"


def test_grade_cli_grades_both_sides_of_pairs(run_cli, pairs_file, tmp_path):
    output = tmp_path / "grades.jsonl"
    code, _, err = run_cli("judge", "grade", "--backends", scripted(["Rating: [[6]]"] * 6), "--input", pairs_file,
                           "-o", output, "--no-progress")
    assert code == 0, err
    records = read_records(output)
    assert len(records) == 6 and {r["score"] for r in records} == {6.0}
    assert "p0:chosen" in {r["id"] for r in records} and records[0]["judge"].startswith("llm-grade:")


def test_pairs_cli_rejects_conversation_inputs_in_one_line(run_cli, tmp_path):
    path = tmp_path / "convs.jsonl"
    path.write_text(json.dumps({"id": "c", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    code, _, err = run_cli("judge", "pairs", "--input", path, "-o", tmp_path / "o.jsonl", "--no-progress")
    assert code == 2
    assert err.strip().count("\n") == 0 and "needs preference pairs" in err


def test_unknown_judge_is_a_config_error(run_cli, pairs_file, tmp_path):
    code, _, err = run_cli("judge", "pairs", "--judge", "oracle", "--input", pairs_file, "-o", tmp_path / "o.jsonl")
    assert code == 2 and "unknown judge 'oracle'" in err


def write_verdicts(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_agree_cli_matches_by_id_and_turn_flips_swapped_names_and_writes_reports(run_cli, tmp_path):
    reference = write_verdicts(tmp_path / "ref.jsonl", [
        {"id": "1", "a": "m1", "b": "m2", "winner": "A", "turn": 1, "category": "math"},
        {"id": "1", "a": "m1", "b": "m2", "winner": "B", "turn": 2, "category": "math"},
        {"id": "2", "a": "m1", "b": "m2", "winner": "tie", "turn": 1, "category": "code"},
        {"id": "3", "a": "m1", "b": "m2", "winner": "A", "turn": 1, "category": "code"},
        {"id": "4", "a": "m1", "b": "m2", "winner": "A", "turn": 1, "category": "code"}])
    judged = write_verdicts(tmp_path / "judge.jsonl", [
        {"id": "1", "a": "m2", "b": "m1", "winner": "B", "turn": 1,
         "detail": {"orders": {"AB": "B", "BA": "B"}, "len_a": 10, "len_b": 50}},   # = m1 wins, flipped
        {"id": "1", "a": "m1", "b": "m2", "winner": "A", "turn": 2},
        {"id": "2", "a": "m1", "b": "m2", "winner": "tie", "turn": 1},
        {"id": "3", "a": "m1", "b": "m2", "winner": None, "turn": 1},
        {"id": "9", "a": "m1", "b": "m2", "winner": "A", "turn": 1}])
    code, out, err = run_cli("judge", "agree", "--a", reference, "--b", judged, "-o", tmp_path / "report")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["counts"] == {"records_a": 5, "records_b": 5, "matched": 4, "only_in_a": 1, "only_in_b": 1,
                                "unparseable_a": 0, "unparseable_b": 1, "compared": 3}
    assert report["agreement"]["accuracy"] == 2 / 3
    assert report["agreement"]["accuracy_without_ties"] == 0.5
    assert report["by_turn"]["2"]["accuracy"] == 0.0 and report["by_category"]["code"]["n"] == 1
    # the flipped record's per-order verdicts and lengths follow the names
    assert report["judges"]["b"]["position_consistency"]["consistent"] == 1.0
    assert report["judges"]["b"]["length_bias"]["prefers_longer"] == 1.0
    buckets = {b["bucket"]: b for b in report["judges"]["b"]["length_buckets"]}
    assert buckets["-100..100"] == {"bucket": "-100..100", "n": 1, "win_rate_a": 1.0} and buckets["> 500"]["n"] == 0
    assert report["plots"] == ["agreement.png"]
    for name in ("report.md", "agreement.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "accuracy 0.667" in out


def test_agree_cli_on_grades_reports_rank_correlations(run_cli, tmp_path):
    a = write_verdicts(tmp_path / "a.jsonl", [{"id": str(i), "score": s} for i, s in enumerate([1, 2, 3, 4, 5])])
    b = write_verdicts(tmp_path / "b.jsonl", [{"id": str(i), "score": s} for i, s in enumerate([2, 1, 4, 3, 5])])
    code, out, err = run_cli("judge", "agree", "--a", a, "--b", b, "-o", tmp_path / "r")
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert abs(report["agreement"]["spearman"] - 0.8) < 1e-9 and (tmp_path / "r" / "scores.png").exists()


def test_agree_cli_refuses_pairwise_against_grades(run_cli, tmp_path):
    a = write_verdicts(tmp_path / "a.jsonl", [{"id": "1", "winner": "A"}])
    b = write_verdicts(tmp_path / "b.jsonl", [{"id": "1", "score": 3}])
    code, _, err = run_cli("judge", "agree", "--a", a, "--b", b, "-o", tmp_path / "r")
    assert code == 2 and "cannot compare pairwise judgments" in err


def test_the_job_modules_register_every_judge_on_their_own():
    import subprocess
    import sys

    code = ("from judge.jobs import JUDGES; import judge.bon_job; "
            "print(' '.join(sorted(JUDGES.names())))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["llm-grade", "llm-pairwise", "rm"]


def test_shipped_judge_configs_are_valid():
    from pathlib import Path

    from chat.config import build_config, load_yaml
    from judge.bon import BonConfig

    for path in sorted((Path(__file__).resolve().parents[2] / "configs" / "judge").glob("*.yaml")):
        values = load_yaml(path)
        if "turns" in values:
            judge_options = values.pop("judge_options", {})
            values.pop("backends")
            build_config(BonConfig, values, str(path)).validate()
            build_config(JudgeConfig, judge_options, str(path))
        else:
            assert build_config(JudgeConfig, values, str(path)).judge in ("llm-pairwise", "llm-grade", "rm")
