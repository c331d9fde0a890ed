"""The run report: stage table, tiny-model labels, RM accuracy, agreement and generation tables, plots."""

from __future__ import annotations

import json

from pipeline.config import PipelineConfig
from pipeline.report import write_report
from pipeline.stages import StageContext
from pipeline_helpers import config_values, write_config


def marker(stage, run, **fields):
    directory = run / stage
    directory.mkdir(parents=True, exist_ok=True)
    values = {"stage": stage, "wall_s": 1.5, "outputs": {}, "counts": {}, "usage": {}, "metrics": {}, **fields}
    (directory / "stage.json").write_text(json.dumps(values))


def test_report_of_a_finished_run(tmp_path):
    run = tmp_path / "run"
    values = config_values(run)
    values["rm_train"] = {"config": {"model_name_or_path": "minilm"}}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    marker("augment", run, outputs={"pairs": str(run / "augment" / "pairs.jsonl")},
           counts={"inputs": 10, "unit": "seeds", "kept_total": 4, "dropped_this_run": {"parse_failure": 6},
                   "carried_over": 0},
           usage={"llm_calls": 80, "cache_hits": 5, "prompt_tokens": 9000, "completion_tokens": 2000})
    marker("rm_train", run, counts={"global_step": 12, "train_pairs": 50, "truncated_sequences": 3},
           metrics={"tokens_per_second": 812.0, "train_loss": 0.61})
    marker("rm_eval", run, metrics={"accuracy": 0.75, "ci95": [0.5, 0.9], "n": 16,
                                    "baselines": {"prefer_longer": 0.5}, "groups": {"origin": {"original": 0.8}}})
    agreement = {"accuracy": 0.625, "accuracy_ci": [0.4, 0.8], "kappa": 0.2}
    marker("judge", run, metrics={"rm-vs-labels": {"counts": {"matched": 16, "compared": 16}, "agreement": agreement},
                                  "llm-vs-rm": {"counts": {"matched": 16, "compared": 0, "unparseable_a": 16},
                                                "agreement": None}})
    marker("generate", run, counts={"sedi": {"inputs": 2, "unit": "iterations", "kept_total": 7}},
           metrics={"sedi": {"distinct_2": 0.9, "rm_score": {"mean": -0.25}}})

    outcome = write_report(ctx)
    text = (run / "report" / "report.md").read_text()
    assert "> - unit test" in text
    assert "Gemma 3 270M *base* model" in text and "all-MiniLM-L6-v2 encoder" in text
    assert "| augment | 1.5 | `augment/pairs.jsonl` | 80 | 5 | 9000 | 2000 | no |" in text
    assert "kept 4 from 10 seeds (dropped in the completing run: parse_failure 6" in text
    assert "12 steps on 50 pairs, 3 sequences truncated" in text
    assert "| reward model | 0.750 [0.500, 0.900] (n=16) |" in text and "By origin: original 0.800" in text
    assert "| rm-vs-labels | 16 | 16 | 0 / 0 | 0.625 [0.400, 0.800] | 0.200 |" in text
    assert "| llm-vs-rm | 16 | 0 | 16 / 0 | n/a (nothing comparable) | n/a |" in text
    assert "- sedi: kept 7 from 2 iterations" in text and "| sedi | 7 | 0.900 | n/a | n/a | -0.250 |" in text
    assert (run / "report" / "stages.png").stat().st_size > 1000
    summary = json.loads((run / "report" / "report.json").read_text())
    assert set(summary["stages"]) == {"augment", "rm_train", "rm_eval", "judge", "generate"}
    assert outcome.outputs["markdown"] == str(run / "report" / "report.md")


def test_a_random_tiny_rm_is_labelled_as_noise(tmp_path):
    values = config_values(tmp_path / "run")
    values["backends"]["llm"]["model"] = "/models/gemma-2-9b-it"
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    write_report(ctx)
    text = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "randomly initialised tiny gemma2 model" in text and "Gemma 3 270M" not in text
