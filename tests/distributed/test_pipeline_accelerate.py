"""`turnwise run` with `rm_train.accelerate_config`: the stage launches 2 CPU ranks, waits, and a failed rank stops it
with one line (rank, exit code, last log line) and no done marker; the rerun resumes and completes the stage."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from launch_helpers import (
    CPU_DDP,
    HH_FILE,
    REPO_ROOT,
    TINY_CONFIG,
    ProbeRecords,
    free_port,
    probe_env,
    run,
)

from chat.runner.sink import write_json_atomic
from pipeline.config import PipelineConfig
from pipeline.stages import launch_failure

#: torchrun's summary when rank 1 raised and rank 0 then died on the broken connection, both seen in one poll:
#: its "first observed failure" is rank 0.
TORCHRUN_SUMMARY = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
app.cli FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-02_01:50:00
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 4243)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_01:50:00
  host      : box
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================"""


def rank_logs(directory: Path, texts: dict[int, str]) -> None:
    """torchrun's layout: DIR/<run id>/attempt_0/<local rank>/stderr.log, written in rank order 0, 1, ... by time."""
    for offset, (rank, text) in enumerate(texts.items()):
        log = directory / "none_abc" / "attempt_0" / str(rank) / "stderr.log"
        log.parent.mkdir(parents=True)
        log.write_text(text)
        os.utime(log, (1_000_000 + offset, 1_000_000 + offset))


def test_launch_failure_names_the_rank_that_failed_first_its_exit_code_and_last_log_line(tmp_path):
    rank_logs(tmp_path, {1: "[rank1]: Traceback (most recent call last):\n[rank1]: RuntimeError: out of memory\n\n",
                         0: "[rank0]: RuntimeError: Connection closed by peer [127.0.0.1]:5508.\n"})
    message = launch_failure(1, ["some output", *TORCHRUN_SUMMARY.splitlines()], tmp_path)
    assert message == (f"rank 1 failed with exit code 1: RuntimeError: out of memory (rank logs: {tmp_path}; "
                       "1 other rank(s) failed after it)")


def test_launch_failure_prefers_a_rank_that_raised_to_one_killed_by_a_signal(tmp_path):
    rank_logs(tmp_path, {0: "[rank0]: step 3\n", 1: "[rank1]: ValueError: bad row\n"})
    summary = TORCHRUN_SUMMARY.replace("exitcode  : 1 (pid: 4242)", "exitcode  : -15 (pid: 4242)")
    message = launch_failure(1, summary.splitlines(), tmp_path)
    assert message.startswith("rank 1 failed with exit code 1: ValueError: bad row (rank logs: ")


def test_launch_failure_without_a_torchrun_summary_gives_the_launcher_exit_code_and_last_line(tmp_path):
    message = launch_failure(2, ["starting", "ValueError: bad accelerate config", ""], tmp_path)
    assert message == "`accelerate launch` exited with code 2: ValueError: bad accelerate config"


def pipeline_config(tmp_path: Path, run_dir: Path) -> Path:
    """A pipeline whose rm_train stage trains the tiny RM in 2 CPU ranks (gloo) for 2 steps."""
    accelerate = yaml.safe_load(CPU_DDP.read_text())
    accelerate["main_process_port"] = free_port()
    accelerate_file = tmp_path / "cpu-ddp.yaml"
    accelerate_file.write_text(yaml.safe_dump(accelerate))
    demo = REPO_ROOT / "configs" / "demo"
    values = {
        "run_dir": str(run_dir), "label": "distributed test",
        "backends": {"llm": {"kind": "local", "model": "embedded", "max_batch_size": 1}},
        "augment": {"seeds": str(demo / "seed_pairs.jsonl"),
                    "config": {"backends": {"simulator": "llm"}, "turns": 3, "limit": 10, "max_tokens": 32}},
        "mix": {"original": str(demo / "seed_pairs.jsonl"), "eval_fraction": 0.25},
        "rm_train": {"config": str(TINY_CONFIG), "accelerate_config": str(accelerate_file),
                     "overrides": {"max_steps": 2, "use_cpu": True, "max_length": 256, "logging_steps": 1,
                                   "per_device_train_batch_size": 2, "disable_tqdm": True}},
        "judge": {"config": {"judge": "llm-pairwise", "backends": {"judge": "llm"}, "max_tokens": 16}},
        "generate": {"seeds": str(demo / "seed_tasks.jsonl"),
                     "review_instruct": {"backends": {"default": "llm"}, "reviewers": 2, "rounds": 2, "limit": 5}},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def fake_earlier_stages(config_path: Path, rows: list[str]) -> None:
    """augment and mix marked done (with this config's fingerprints) and mix's splits written from real rows."""
    config = PipelineConfig.load(config_path)
    mix = config.run_dir / "mix"
    mix.mkdir(parents=True)
    for name, part in (("train", rows[:16]), ("train.original", rows[:16]), ("eval", rows[16:24])):
        (mix / f"data.{name}.jsonl").write_text("".join(part), encoding="utf-8")
    (config.run_dir / "augment").mkdir()
    (config.run_dir / "augment" / "pairs.jsonl").write_text("")
    for stage in ("augment", "mix"):
        write_json_atomic(config.run_dir / stage / "stage.json", {"stage": stage,
                                                                  "fingerprint": config.fingerprint(stage)})


@pytest.mark.slow
def test_a_failed_rank_stops_the_stage_with_one_line_and_the_rerun_completes_it(shared_data, tmp_path):
    with gzip.open(shared_data / HH_FILE, "rt", encoding="utf-8") as handle:
        rows = list(itertools.islice(handle, 24))
    run_dir = tmp_path / "run"
    config = pipeline_config(tmp_path, run_dir)
    fake_earlier_stages(config, rows)
    command = [sys.executable, "-m", "app.cli", "run", str(config), "--until", "rm_train", "--no-progress"]

    failed = run(command, probe_env(tmp_path / "probe-failed", run_dir, fail_rank=1))
    assert failed.returncode == 2, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("turnwise: error: rm_train (baseline): rank 1 failed with exit code 1: "
                           "RuntimeError: injected failure on rank 1 (rank logs: "), last
    assert not (run_dir / "rm_train" / "stage.json").exists()
    assert not (run_dir / "rm_train" / "baseline.result.json").exists()

    done = run(command, probe_env(tmp_path / "probe-done", run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    marker = json.loads((run_dir / "rm_train" / "stage.json").read_text())
    assert marker["counts"]["baseline"]["global_step"] == marker["counts"]["music"]["global_step"] == 2
    trained = ProbeRecords.read(tmp_path / "probe-done").batches      # both RMs, each in both ranks
    assert sorted(trained) == [0, 1] and all(sorted(steps) == [0, 1] for steps in trained.values())
