"""`turnwise run` against a fault-injecting OpenAI-compatible server (429 + Retry-After, 500, malformed JSON,
truncated body, hang): every stage completes with the fault-free outputs, or stops with one clear line and
resumes; the API key appears in no file of the run directory and in no output (the reliability suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.cli import main
from fakes.fault_server import FaultPlan, FaultServer
from pipeline_outputs import compare_runs, records
from reliability_responders import pipeline_reply

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "tests" / "fixtures" / "pipeline" / "tiny.yaml"
KEY_ENV = "TURNWISE_PIPELINE_TEST_KEY"
KEY = "sk-pipeline-secret-7c1e9a"
FAULTS = FaultPlan(rate_429=0.06, rate_500=0.06, rate_garbage=0.05, rate_truncated=0.05, rate_hang=0.03,
                   hang_s=2.0, echo_authorization=True)


def pipeline_config(tmp_path: Path, server: FaultServer, name: str) -> Path:
    """The reliability fixture with every LLM role served by `server` (deterministic replies in each role's
    format: echo replies would leave MUSIC without a usable pair)."""
    values = yaml.safe_load(TINY.read_text())
    values["backends"] = {"llm": server.backend_config(api_key_env=KEY_ENV, timeout=0.5, max_retries=10,
                                                       cache=True)}
    values["augment"]["seeds"] = str(REPO_ROOT / values["augment"]["seeds"])
    values["mix"]["original"] = str(REPO_ROOT / values["mix"]["original"])
    values["generate"]["seeds"] = str(REPO_ROOT / values["generate"]["seeds"])
    values["rm_train"]["config"]["tokenizer_name_or_path"] = "minilm"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def run(config: Path, run_dir: Path, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["run", str(config), "--run-dir", str(run_dir), "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_key_absent(run_dir: Path, *texts: str) -> None:
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"API key found in {path}"
    for text in texts:
        assert KEY not in text


@pytest.mark.slow
def test_every_stage_completes_through_faults_with_the_fault_free_outputs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FaultServer(reply=pipeline_reply) as clean:
        assert run(pipeline_config(tmp_path, clean, "clean"), tmp_path / "clean", capsys)[0] == 0
    with FaultServer(FAULTS, seed=3, reply=pipeline_reply) as faulty:
        code, out, err = run(pipeline_config(tmp_path, faulty, "faulty"), tmp_path / "faulty", capsys)
        served = faulty.counts
    assert code == 0, out + err
    assert all(served[kind] > 0 for kind in ("429", "500", "garbage", "truncated", "hang")), served
    problems = compare_runs(tmp_path / "faulty", tmp_path / "clean")
    assert problems == [], "\n".join(problems)
    assert "[report] done" in out
    assert_key_absent(tmp_path / "faulty", out, err)


@pytest.mark.slow
def test_a_dead_server_stops_the_stage_in_one_line_and_a_rerun_finishes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FaultServer(FaultPlan(rate_500=1.0, echo_authorization=True), reply=pipeline_reply) as server:
        config = pipeline_config(tmp_path, server, "p")
        code, out, err = run(config, tmp_path / "run", capsys, "--until", "augment")
        assert code == 1
        stopped = [line for line in out.splitlines() if line.startswith("[augment] stopped")]
        assert len(stopped) == 1 and "6 item(s) failed" in stopped[0] and "rerun to retry them" in stopped[0]
        assert not (tmp_path / "run" / "augment" / "stage.json").exists()
        assert_key_absent(tmp_path / "run", out, err)

        server.plan = FaultPlan()                 # the server comes back: the same command finishes the stage
        code, out, _ = run(config, tmp_path / "run", capsys, "--until", "augment")
    assert code == 0 and "[augment] resuming" in out and "[augment] done" in out
    assert len(records(tmp_path / "run" / "augment" / "pairs.jsonl.seeds.jsonl")) == 6
