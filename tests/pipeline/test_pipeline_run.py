"""Stage orchestration with fake stages: skip done stages, resume partial ones, --from / --until, config changes."""

from __future__ import annotations

import json

import pytest

import pipeline.stages
from chat.errors import ConfigError
from pipeline.config import STAGES, PipelineConfig
from chat.runner import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED
from pipeline.run import run_pipeline, stage_status
from pipeline.stages import StageOutcome
from pipeline_helpers import config_values, write_config

LLM_STAGES = [stage for stage in STAGES if stage != "report"]


@pytest.fixture
def calls(monkeypatch):
    """Every stage replaced by a fake that writes one file and records that it ran."""
    ran: list[str] = []

    def fake(stage):
        def run(ctx):
            ran.append(stage)
            directory = ctx.stage_dir(stage)
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "out.txt").write_text(stage)
            return StageOutcome(outputs={"out": str(directory / "out.txt")},
                                usage={"llm_calls": 2, "cache_hits": 0, "prompt_tokens": 3, "completion_tokens": 4})
        return run

    for stage in LLM_STAGES:
        monkeypatch.setitem(pipeline.stages.STAGE_FUNCTIONS, stage, fake(stage))
    return ran


def load(tmp_path, **changes):
    values = config_values(tmp_path / "run")
    for stage, section in changes.items():
        values[stage].update(section)
    return PipelineConfig.load(write_config(tmp_path / "p.yaml", values))


def test_a_full_run_marks_every_stage_and_a_rerun_skips_them(tmp_path, calls):
    config = load(tmp_path)
    lines: list[str] = []
    assert run_pipeline(config, progress=False, say=lines.append) == 0
    assert calls == LLM_STAGES
    for stage in STAGES:
        marker = json.loads((tmp_path / "run" / stage / "stage.json").read_text())
        assert marker["stage"] == stage and marker["fingerprint"] == config.fingerprint(stage)
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "| augment |" in report and "unit test" in report
    calls.clear()
    assert run_pipeline(config, progress=False, say=lines.append) == 0
    assert calls == [] and lines[-1].startswith("[report] done: skipped")


def test_until_stops_and_the_next_run_continues(tmp_path, calls):
    config = load(tmp_path)
    assert run_pipeline(config, until="mix", progress=False, say=lambda _: None) == 0
    assert calls == ["augment", "mix"] and stage_status(config, "rm_train") == "pending"
    assert run_pipeline(config, progress=False, say=lambda _: None) == 0
    assert calls == LLM_STAGES


def test_an_incomplete_stage_stops_the_run_without_a_marker_and_resumes(tmp_path, calls, monkeypatch):
    config = load(tmp_path)
    outcomes = iter([StageOutcome(complete=False, problem="judge (LLM): 2 item(s) failed"),
                     StageOutcome(complete=False, interrupted=True, problem="interrupted")])

    def flaky(ctx):
        (ctx.stage_dir("judge") / "partial.jsonl").write_text("{}\n")
        return next(outcomes, StageOutcome())

    monkeypatch.setitem(pipeline.stages.STAGE_FUNCTIONS, "judge", flaky)
    lines: list[str] = []
    assert run_pipeline(config, progress=False, say=lines.append) == EXIT_ITEMS_FAILED
    assert lines[-1] == "[judge] stopped: judge (LLM): 2 item(s) failed"
    assert stage_status(config, "judge") == "partial" and stage_status(config, "generate") == "pending"
    assert run_pipeline(config, progress=False, say=lines.append) == EXIT_INTERRUPTED
    assert "[judge] resuming" in lines
    assert run_pipeline(config, progress=False, say=lines.append) == 0
    assert json.loads((tmp_path / "run" / "judge" / "stage.json").read_text())["resumed"] is True


def test_a_changed_stage_config_is_refused_until_from_redoes_it(tmp_path, calls):
    assert run_pipeline(load(tmp_path), progress=False, say=lambda _: None) == 0
    changed = load(tmp_path, judge={"config": {"judge": "llm-pairwise", "max_tokens": 99}})
    assert stage_status(changed, "judge") == "changed" and stage_status(changed, "mix") == "done"
    with pytest.raises(ConfigError, match="stage judge of .* was run with a different configuration; rerun with "
                                          "--from judge"):
        run_pipeline(changed, progress=False, say=lambda _: None)
    calls.clear()
    lines: list[str] = []
    assert run_pipeline(changed, start="judge", progress=False, say=lines.append) == 0
    assert calls == ["judge", "generate"]
    assert any(line.startswith("--from judge: removing") and line.endswith("report") for line in lines)


def test_from_needs_the_earlier_stages_done(tmp_path, calls):
    with pytest.raises(ConfigError, match="--from rm_eval: stage augment is pending"):
        run_pipeline(load(tmp_path), start="rm_eval", progress=False, say=lambda _: None)
    with pytest.raises(ConfigError, match="--from generate comes after --until mix"):
        run_pipeline(load(tmp_path), start="generate", until="mix", progress=False, say=lambda _: None)


def test_judge_and_generate_without_a_section_record_themselves_as_skipped(tmp_path):
    values = config_values(tmp_path / "run")
    del values["judge"], values["generate"]
    ctx = pipeline.stages.StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    assert pipeline.stages.run_judge(ctx).counts == {"skipped": "no judge section in the config"}
    assert pipeline.stages.run_generate(ctx).counts == {"skipped": "no generate section in the config"}
    assert not (tmp_path / "run" / "judge").exists() and not (tmp_path / "run" / "generate").exists()
