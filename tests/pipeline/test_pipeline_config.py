"""Pipeline YAML: validation messages, named backends with the run's response cache, stage sections."""

from __future__ import annotations

import pytest

from app.cli import main
from chat.errors import ConfigError
from pipeline.config import PipelineConfig
from pipeline.stages import StageContext
from pipeline_helpers import REPO_ROOT, config_values, write_config


def test_named_backends_resolve_with_the_runs_response_cache(tmp_path):
    config = PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(tmp_path / "run")))
    options = config.stage_options("augment")
    assert options["backends"] == {"simulator": {"kind": "local", "model": "embedded", "max_batch_size": 1,
                                                 "cache_path": str(tmp_path / "run" / "responses.sqlite")}}
    assert config.sections["augment"]["config"]["backends"] == {"simulator": "llm"}   # the raw section is unchanged


def test_run_dir_option_overrides_the_config(tmp_path):
    config = PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(tmp_path / "run")), tmp_path / "x")
    assert config.run_dir == tmp_path / "x"
    assert config.named_backend("llm")["cache_path"] == str(tmp_path / "x" / "responses.sqlite")


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(stages=[]), "unknown key(s) stages"),
    (lambda v: v.pop("rm_train"), "missing stage section(s) rm_train"),
    (lambda v: v.update(mix=[1]), "mix: expected a mapping, got list"),
    (lambda v: v.pop("run_dir"), "run_dir: missing"),
    (lambda v: v.update(backends={"llm": "local"}), "backends: expected a mapping of name -> backend spec"),
])
def test_bad_top_level_is_a_config_error_naming_the_file(tmp_path, change, message):
    values = config_values(tmp_path / "run")
    change(values)
    path = write_config(tmp_path / "p.yaml", values)
    with pytest.raises(ConfigError) as error:
        PipelineConfig.load(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_backend_name_that_is_not_defined_is_named(tmp_path):
    values = config_values(tmp_path / "run")
    values["judge"]["config"]["backends"] = {"judge": "lmm"}
    config = PipelineConfig.load(write_config(tmp_path / "p.yaml", values))
    with pytest.raises(ConfigError, match=r"judge.config.backends.judge: 'lmm' is not a backend named under"):
        config.stage_options("judge")


def test_stage_sections_reject_unknown_keys_and_missing_inputs(tmp_path):
    values = config_values(tmp_path / "run")
    values["mix"]["eval_fractoin"] = 0.1
    values["generate"]["seeds"] = str(tmp_path / "missing.jsonl")
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    with pytest.raises(ConfigError, match=r"mix: unknown key\(s\) eval_fractoin"):
        ctx.section("mix", ("original", "eval_fraction"))
    with pytest.raises(ConfigError, match=r"generate.seeds: .*missing.jsonl: no such file"):
        ctx.input_path("generate", "seeds")


def test_stage_scalars_are_converted_or_refused_with_the_key(tmp_path):
    values = config_values(tmp_path / "run")
    values["mix"].update(eval_fraction="0.5", seed="lots")
    values["generate"]["embeddings"] = "false"
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    assert ctx.value("mix", "eval_fraction", 0.05, float) == 0.5
    assert ctx.value("mix", "count", None, int) is None
    with pytest.raises(ConfigError, match=r"mix.seed: expected int, got 'lots'"):
        ctx.value("mix", "seed", 0, int)
    with pytest.raises(ConfigError, match=r"generate.embeddings: expected bool, got 'false'"):
        ctx.value("generate", "embeddings", True, bool)


def test_fingerprint_changes_with_the_stage_section_only(tmp_path):
    values = config_values(tmp_path / "run")
    first = PipelineConfig.load(write_config(tmp_path / "a.yaml", values))
    values["generate"]["review_instruct"]["rounds"] = 3
    second = PipelineConfig.load(write_config(tmp_path / "b.yaml", values))
    assert first.fingerprint("augment") == second.fingerprint("augment")
    assert first.fingerprint("generate") != second.fingerprint("generate")


def test_cli_reports_a_bad_config_in_one_line_with_exit_2(tmp_path, capsys):
    values = config_values(tmp_path / "run")
    values["augment"]["config"]["turns"] = 0
    path = write_config(tmp_path / "p.yaml", values)
    assert main(["run", str(path), "--dry-run"]) == 0          # the dry run reports the problem in its table
    assert "cannot estimate" in capsys.readouterr().out
    assert main(["run", str(path), "--until", "augment"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "augment.config: turns: expected at least 1" in err
    assert not (tmp_path / "run" / "augment" / "pairs.jsonl").exists()


def test_the_demo_runs_music_as_the_paper_describes_with_every_llm_role_on_the_embedded_model():
    from augment.config import MusicConfig
    from generate.review_instruct.config import ReviewInstructConfig
    from generate.sedi.config import SediConfig
    from judge.config import JudgeConfig

    ctx = StageContext(PipelineConfig.load(REPO_ROOT / "configs" / "pipeline" / "demo.yaml"))
    music = ctx.options("augment", MusicConfig)
    assert (music.divergence, music.contrast_scope, music.reuse_seed_rejected) == ("uniform", "from_divergence", False)
    roles = [*music.backends.values(), *ctx.options("judge", JudgeConfig).backends.values(),
             *ctx.options("generate", ReviewInstructConfig, "review_instruct", rm=None).backends.values(),
             *ctx.options("generate", SediConfig, "sedi", rm=None).backends.values()]
    assert {role["model"] for role in roles} == {"embedded"}
