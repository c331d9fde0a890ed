"""kill -9 at random points of every long stage of `turnwise run`, then resume: the final outputs equal those of
an uninterrupted run with the same seeds; no record lost, none duplicated (the reliability suite)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.config import STAGES
from pipeline_outputs import compare_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "tests" / "fixtures" / "pipeline" / "tiny.yaml"
#: The LLM of every role. Not the fixture's Gemma 3 270M base model: Gemma's chat template rejects the MUSIC user
#: simulator's requests (roles flipped, so they start with an assistant turn, and a closing system reminder).
LLM_MODEL = "embedded"
#: One kill per entry: the process is killed at a random moment after this stage (or a later one) starts.
KILL_TARGETS = ["augment", "augment", "rm_train", "rm_train", "rm_eval", "judge", "judge", "generate", "generate",
                "generate"]


def pipeline_config(folder: Path) -> Path:
    """The reliability fixture with LLM_MODEL as its LLM."""
    values = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    values["backends"]["llm"]["model"] = LLM_MODEL
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def command(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "app.cli", "run", str(config), "--run-dir", str(run_dir), "--no-progress"]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_to_the_end(config: Path, run_dir: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command(config, run_dir), cwd=REPO_ROOT, env=environment(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def started_stage(line: str) -> str | None:
    """The stage a `[stage] starting|resuming` (or `done: skipped`) progress line is about."""
    if line.startswith("[") and "]" in line:
        return line[1:line.index("]")]
    return None


def kill_once(config: Path, run_dir: Path, target: str, rng: random.Random) -> tuple[bool, str]:
    """Start the pipeline, wait until `target` or a later stage is under way, kill -9 a random moment later.
    Returns (killed, the stage it was in)."""
    process = subprocess.Popen(command(config, run_dir), cwd=REPO_ROOT, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    current = None
    assert process.stdout is not None
    for line in process.stdout:
        stage = started_stage(line.strip())
        if stage in STAGES and "skipped" not in line and "done in" not in line:
            current = stage
            if STAGES.index(stage) >= STAGES.index(target):
                break
    time.sleep(rng.uniform(0.3, 5.0))
    if process.poll() is not None:
        return False, current or "?"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return True, current or "?"


@pytest.mark.slow
def test_ten_kills_across_the_pipeline_end_with_the_uninterrupted_outputs(tmp_path):
    config = pipeline_config(tmp_path)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_the_end(config, reference)

    rng = random.Random(8)
    kills: list[str] = []
    for target in KILL_TARGETS:
        was_killed, stage = kill_once(config, killed, target, rng)
        if was_killed:
            kills.append(stage)
    final = run_to_the_end(config, killed)

    assert len(kills) >= 10, kills
    assert {"augment", "rm_train", "judge", "generate"} <= set(kills), kills
    assert "[report] done" in final.stdout
    assert compare_runs(killed, reference) == [], f"outputs differ after kills in {kills}"
    steps = [{rm: counts[rm]["global_step"] for rm in ("baseline", "music")}
             for counts in (json.loads((run / "rm_train" / "stage.json").read_text())["counts"]
                            for run in (reference, killed))]
    assert steps[0] == steps[1] == {"baseline": 8, "music": 8}
