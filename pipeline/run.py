"""Run a pipeline stage by stage: skip the stages whose output is complete, resume the one that was cut off.

A stage is complete when `RUN/<stage>/stage.json` exists; it is written atomically after the stage's last
output, so a stage killed at any point has no marker and runs again (its runner resumes item by item).
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chat.errors import ConfigError
from chat.runner import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED
from chat.runner.sink import write_json_atomic
from pipeline.config import STAGES, PipelineConfig
from pipeline.stages import STAGE_FUNCTIONS, StageContext, StageOutcome

logger = logging.getLogger(__name__)

MARKER = "stage.json"
#: Written when a stage starts: the config fingerprint its partial output belongs to.
STARTED = "started.json"


def marker_path(run_dir: Path, stage: str, name: str = MARKER) -> Path:
    return run_dir / stage / name


def read_marker(run_dir: Path, stage: str, name: str = MARKER) -> dict[str, Any] | None:
    path = marker_path(run_dir, stage, name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None          # unreadable marker: the stage runs again


def stage_status(config: PipelineConfig, stage: str) -> str:
    """done, changed (done or started with a different config), partial (started, no marker) or pending."""
    marker = read_marker(config.run_dir, stage) or read_marker(config.run_dir, stage, STARTED)
    if marker is None:
        return "pending"
    if marker.get("fingerprint") != config.fingerprint(stage):
        return "changed"
    return "done" if marker_path(config.run_dir, stage).is_file() else "partial"


@dataclass
class StageSelection:
    """The stages a command runs: `--from` and `--until` applied to STAGES."""

    start: str
    until: str

    @classmethod
    def parse(cls, start: str | None, until: str | None) -> "StageSelection":
        for option, value in (("--from", start), ("--until", until)):
            if value is not None and value not in STAGES:
                raise ConfigError(f"{option}: unknown stage {value!r} (stages: {', '.join(STAGES)})")
        selection = cls(start or STAGES[0], until or STAGES[-1])
        if STAGES.index(selection.start) > STAGES.index(selection.until):
            raise ConfigError(f"--from {selection.start} comes after --until {selection.until}")
        return selection

    @property
    def stages(self) -> list[str]:
        return list(STAGES[STAGES.index(self.start):STAGES.index(self.until) + 1])


def check_earlier_stages(config: PipelineConfig, first: str) -> None:
    """Stages before `first` must be done (with this config) for `--from first` to make sense."""
    for stage in STAGES[:STAGES.index(first)]:
        status = stage_status(config, stage)
        if status != "done":
            raise ConfigError(f"--from {first}: stage {stage} is {status} in {config.run_dir}; "
                              f"run it first (drop --from)")


def redo_from(config: PipelineConfig, first: str, say: Callable[[str], None]) -> None:
    """`--from STAGE`: remove STAGE's and every later stage's directory, so they run from scratch."""
    check_earlier_stages(config, first)
    for stage in STAGES[STAGES.index(first):]:
        directory = config.run_dir / stage
        if directory.exists():
            say(f"--from {first}: removing {directory}")
            shutil.rmtree(directory)


def run_stage(ctx: StageContext, stage: str) -> StageOutcome:
    if stage == "report":
        from pipeline.report import write_report

        return write_report(ctx)
    return STAGE_FUNCTIONS[stage](ctx)


def run_pipeline(config: PipelineConfig, *, start: str | None = None, until: str | None = None,
                 progress: bool = True, say: Callable[[str], None] = print) -> int:
    """Run the selected stages in order; returns the exit code: 0, EXIT_ITEMS_FAILED when a stage stopped with
    failed items (rerunning the same command retries them), EXIT_INTERRUPTED after Ctrl-C."""
    selection = StageSelection.parse(start, until)
    if start is not None:
        redo_from(config, start, say)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.source, config.run_dir / "pipeline.yaml")
    ctx = StageContext(config, progress=progress)
    for stage in selection.stages:
        status = stage_status(config, stage)
        if status == "done":
            say(f"[{stage}] done: skipped ({marker_path(config.run_dir, stage)})")
            continue
        if status == "changed":
            raise ConfigError(f"{config.source}: stage {stage} of {config.run_dir} was run with a different "
                              f"configuration; rerun with --from {stage} to redo it and the later stages, or use a "
                              "new --run-dir")
        earlier = [s for s in STAGES[:STAGES.index(stage)] if stage_status(config, s) != "done"]
        if earlier:
            raise ConfigError(f"stage {stage} needs {', '.join(earlier)} done first in {config.run_dir}")
        say(f"[{stage}] {'resuming' if status == 'partial' else 'starting'}")
        if status == "pending":
            write_json_atomic(marker_path(config.run_dir, stage, STARTED), {"fingerprint": config.fingerprint(stage)})
        started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        started = time.perf_counter()
        outcome = run_stage(ctx, stage)
        wall = time.perf_counter() - started
        if not outcome.complete:
            say(f"[{stage}] stopped: {outcome.problem}")
            return EXIT_INTERRUPTED if outcome.interrupted else EXIT_ITEMS_FAILED
        marker = {"stage": stage, "fingerprint": config.fingerprint(stage), "started_at": started_at,
                  "wall_s": round(wall, 2), "resumed": status == "partial", **outcome.to_dict()}
        write_json_atomic(marker_path(config.run_dir, stage), marker)
        say(f"[{stage}] done in {wall:.1f}s")
    return 0
