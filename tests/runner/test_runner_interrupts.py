"""A runner child process killed with SIGKILL or stopped with Ctrl-C loses no record and duplicates none."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat.runner import read_records, summary_path
CHILD = Path(__file__).with_name("runner_child.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_IDS = [f"item-{index:04d}" for index in range(200)]


def start_child(output: Path, *args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(CHILD), str(output), *args], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "running", process.stderr.read()
    return process


def finish_child(output: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(CHILD), str(output), *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def wait_for_lines(path: Path, count: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {count} lines in {timeout_s} s")


def records_by_id(path: Path) -> dict[str, dict]:
    records = read_records(path)
    by_id = {record["id"]: record for record in records}
    assert len(by_id) == len(records), "duplicate ids in the sink"
    return by_id


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference.jsonl"
    finish_child(reference)
    expected = records_by_id(reference)
    assert sorted(expected) == ALL_IDS

    output = tmp_path / "killed.jsonl"
    rng = random.Random(20240607)
    kills = 0
    progress_between_kills = []
    while kills < 6:
        process = start_child(output)
        time.sleep(rng.uniform(0.02, 0.15))
        if process.poll() is not None:  # the job finished before this kill
            break
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        process.stdout.close()
        process.stderr.close()
        kills += 1
        progress_between_kills.append(len(read_records(output)))
    print("records after each kill:", progress_between_kills)
    assert kills >= 5, f"the job finished after {kills} kills; lower the delays"
    assert progress_between_kills[-1] < len(ALL_IDS)

    finish_child(output)
    assert output.read_bytes().endswith(b"\n")
    assert records_by_id(output) == expected  # none missing, none duplicated, identical content
    assert json.loads(summary_path(output).read_text(encoding="utf-8"))["interrupted"] is False


@pytest.mark.slow
def test_ctrl_c_finishes_items_in_flight_exits_130_and_a_rerun_completes(tmp_path):
    output = tmp_path / "out.jsonl"
    started_log = tmp_path / "started.txt"
    process = start_child(output, "--sleep-ms", "20", "60", "--started-log", str(started_log))
    wait_for_lines(output, 10)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr

    written = records_by_id(output)
    started = set(started_log.read_text(encoding="utf-8").split())
    assert set(written) == started  # every item in flight at Ctrl-C was finished and written
    assert 10 <= len(written) < len(ALL_IDS)
    summary = json.loads(summary_path(output).read_text(encoding="utf-8"))
    assert summary["interrupted"] is True and summary["done"] == len(written)
    assert "rerun the same command to resume" in stdout

    finish_child(output)
    assert sorted(records_by_id(output)) == ALL_IDS
    summary = json.loads(summary_path(output).read_text(encoding="utf-8"))
    assert (summary["interrupted"], summary["skipped_existing"], summary["done"]) == (False, len(written), 200 - len(written))


@pytest.mark.slow
def test_second_ctrl_c_abandons_items_in_flight_and_leaves_a_clean_sink(tmp_path):
    output = tmp_path / "out.jsonl"
    started_log = tmp_path / "started.txt"
    process = start_child(output, "--fast-items", "8", "--sleep-ms", "1", "2", "--slow-s", "60",
                          "--started-log", str(started_log))
    wait_for_lines(output, 8)
    wait_for_lines(started_log, 12)  # four slow items in flight
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    began = time.monotonic()
    _, stderr = process.communicate(timeout=20)
    assert time.monotonic() - began < 5  # the 60 s workers were abandoned
    assert process.returncode == 130 and "Traceback" not in stderr
    assert output.read_bytes().endswith(b"\n")
    assert sorted(records_by_id(output)) == ALL_IDS[:8]
    assert json.loads(summary_path(output).read_text(encoding="utf-8"))["interrupted"] is True
