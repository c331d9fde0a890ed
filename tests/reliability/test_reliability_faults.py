"""Every LLM stage command against a fault-injecting OpenAI-compatible server (429, 500, malformed JSON,
truncated body, hang): it completes with the records of a fault-free run, or, when the faults outlast the
retries, fails the items with a one-line message and exit 1; a rerun then finishes them without duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_responders import RESPONDERS
from reliability_stages import (STAGES, assert_all_files_parse, ids_of, jsonl_lines, outputs_of, run_cli,
                                write_config)

from fakes.fault_server import FaultPlan, FaultServer

#: Every fault kind first (so each is exercised whatever the RNG draws), then about one request in three faulted.
MIXED_FAULTS = FaultPlan(rate_429=0.09, rate_500=0.09, rate_garbage=0.06, rate_truncated=0.06, rate_hang=0.03,
                         sequence=("429", "500", "garbage", "truncated", "hang"), retry_after=0.01, hang_s=1.0)
FAULT_KINDS = ("429", "500", "garbage", "truncated", "hang")
#: Client settings: a hang costs one 0.25 s timeout; 12 retries outlast any plausible run of faults at ~1/3.
PATIENT = {"timeout": 0.25, "max_retries": 12}
IMPATIENT = {"timeout": 0.25, "max_retries": 2}

STAGE_PARAMS = [pytest.param(name, marks=[pytest.mark.slow] if name == "generate mimg" else [], id=name.replace(" ", "-"))
                for name in STAGES]


class StageRun:
    """One stage's input, output folder and config, run against a server with the stage's responder."""

    def __init__(self, name: str, folder: Path):
        self.name = name
        self.stage = STAGES[name]
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.input = self.stage.make_input(folder)
        self.out_dir = folder / "out"
        self.output = self.out_dir / "records.jsonl"

    def server(self, plan: FaultPlan | None = None) -> FaultServer:
        return FaultServer(plan or FaultPlan(), seed=7, reply=RESPONDERS[self.name])

    def argv(self, server: FaultServer, **client: object) -> list[str]:
        # every server of the stage answers alike, on a new free port each time: the endpoint identity stands in
        # for the URL, so a rerun against another server resumes instead of refusing a changed backend
        config = write_config(self.folder / "backend.yaml", self.stage.backend_role,
                              server.backend_config(endpoint_identity=f"fault-server|{self.name}", **client))
        return self.stage.argv(self.input, self.output, config)

    def records(self) -> dict[str, list]:
        return outputs_of(self.out_dir, self.output)

    def summaries(self) -> dict[str, dict]:
        """`<sink>.summary.json` of every runner sink of the stage, by sink name."""
        summaries = {path.name.removesuffix(".summary.json"): json.loads(path.read_text(encoding="utf-8"))
                     for path in self.out_dir.glob("*.summary.json")}
        return {sink: summary for sink, summary in summaries.items() if "skipped_existing" in summary}

    def finished_per_sink(self) -> dict[str, int]:
        """Items each sink holds: what a resumed run must skip."""
        return {sink: len(ids_of(self.out_dir / sink)) for sink in self.summaries()}

    def assert_no_duplicates(self) -> None:
        for path in self.out_dir.glob(self.output.name + "*.jsonl"):
            if path.name.endswith(".errors.jsonl"):
                continue
            ids = ids_of(path)
            assert len(ids) == len(set(ids)), f"{path.name} repeats ids"


_baselines: dict[str, tuple[dict[str, list], int]] = {}


def fault_free(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list], int]:
    """(records, chat requests) of a fault-free run of the stage; computed once per session."""
    if name not in _baselines:
        run = StageRun(name, tmp_path_factory.mktemp("baseline"))
        with run.server() as server:
            result = run_cli(run.argv(server, **PATIENT))
        assert result.code == 0, result.stderr
        records = run.records()
        assert records and all(records.values()), f"the fault-free {name} run wrote no records: {result.stdout}"
        _baselines[name] = (records, server.request_count)
    return _baselines[name]


def run_subprocess(argv: list[str]) -> subprocess.CompletedProcess:
    """`turnwise ARGV` as a child process (its stderr is what a user sees, logging included)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=240)


def problem_lines(stderr: str) -> list[str]:
    """stderr lines other than model-loading progress bars."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("Loading weights")]


@pytest.mark.parametrize("name", STAGE_PARAMS)
def test_mixed_faults_leave_the_records_of_a_fault_free_run(name, tmp_path, tmp_path_factory):
    expected, _ = fault_free(name, tmp_path_factory)
    run = StageRun(name, tmp_path)
    with run.server(MIXED_FAULTS) as server:
        result = run_cli(run.argv(server, **PATIENT))
    assert result.code == 0, result.stdout + result.stderr
    assert all(server.counts[kind] >= 1 for kind in FAULT_KINDS), server.counts
    assert server.counts["requests"] > server.counts["ok"]
    assert_all_files_parse(run.out_dir)
    assert run.records() == expected
    assert not list(run.out_dir.glob("*.errors.jsonl"))
    # rerunning the finished command with a healthy server changes nothing
    with run.server() as server:
        again = run_cli(run.argv(server, **PATIENT))
    assert again.code == 0 and run.records() == expected
    run.assert_no_duplicates()


@pytest.mark.slow
@pytest.mark.parametrize("name", STAGE_PARAMS)
def test_a_backend_failing_for_good_fails_items_with_one_line_then_a_rerun_finishes_them(name, tmp_path,
                                                                                         tmp_path_factory):
    expected, requests = fault_free(name, tmp_path_factory)
    run = StageRun(name, tmp_path)
    # healthy for the first third of the calls, then every request is a 500
    plan = FaultPlan(rate_500=1.0, sequence=("ok",) * (requests // 3))
    with run.server(plan) as server:
        failed = run_subprocess(run.argv(server, **IMPATIENT))
    lines = problem_lines(failed.stderr)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    # one line per runner pass with failures (MIMG has two: single-hop QAs, then merges), naming its error log
    error_logs = sorted(run.out_dir.glob("*.errors.jsonl"))
    assert len(lines) == len(error_logs) >= 1, failed.stderr
    assert all("giving up after 3 attempts: 500 Internal Server Error" in line for line in lines), lines
    assert {str(path) for path in error_logs} == {line.rsplit("failures go to ", 1)[-1].rstrip(")") for line in lines}
    assert "failures are listed in" in failed.stdout
    assert_all_files_parse(run.out_dir)
    errors = [row for path in error_logs for row in jsonl_lines(path)]
    assert errors and all("500" in row["error"] for row in errors)
    finished = run.finished_per_sink()
    # the same command against a healthy server finishes what is left, redoing none of the finished items
    with run.server() as server:
        resumed = run_subprocess(run.argv(server, **PATIENT))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert server.request_count <= requests
    for sink, summary in run.summaries().items():
        assert summary["skipped_existing"] == finished.get(sink, 0), sink
    assert run.records() == expected
    run.assert_no_duplicates()
    assert not list(run.out_dir.glob("*.errors.jsonl"))


@pytest.mark.parametrize("plan, message", [
    (FaultPlan(rate_hang=1.0, hang_s=1.0), "request timed out after 0.25s"),
    (FaultPlan(rate_429=1.0, retry_after=0.01), "429"),
    (FaultPlan(rate_garbage=0.5, rate_truncated=0.5), "giving up after 3 attempts"),
], ids=["always-hangs", "always-429", "always-malformed"])
def test_a_judge_run_against_a_dead_server_exits_1_with_the_reason(plan, message, tmp_path, tmp_path_factory):
    expected, _ = fault_free("judge grade", tmp_path_factory)
    run = StageRun("judge grade", tmp_path)
    with run.server(plan) as server:
        failed = run_cli(run.argv(server, **IMPATIENT))
    assert failed.code == 1 and "10 failed" in failed.stdout
    errors = [row for path in run.out_dir.glob("*.errors.jsonl") for row in jsonl_lines(path)]
    assert len(errors) == 10 and all(message in row["error"] for row in errors), errors[:1]
    assert not run.output.exists() or jsonl_lines(run.output) == []
    with run.server() as server:
        assert run_cli(run.argv(server, **PATIENT)).code == 0
    assert run.records() == expected
    run.assert_no_duplicates()
