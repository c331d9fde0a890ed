"""`turnwise rm train|eval|score|quantize`: outputs, reports, resumable scoring, and exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest

from rm_helpers import TINY_CONFIG, synthetic_pairs, write_pairs


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_pairs(synthetic_pairs(12, seed=3), tmp_path_factory.mktemp("data") / "pairs.jsonl")


def test_train_command_prints_steps_truncation_and_eval(run_cli, tmp_path, pairs_file):
    code, out, err = run_cli("rm", "train", "--config", TINY_CONFIG, "--train_data", pairs_file,
                             "--output_dir", tmp_path / "run", "--max_steps", "2", "--eval_fraction", "0.25",
                             "--disable_tqdm", "true")
    assert code == 0, err
    assert "trained 2 steps on 9 pairs" in out
    assert "none dropped" in out
    assert "eval on 3 pairs: accuracy" in out
    assert (tmp_path / "run" / "turnwise_rm.json").is_file()


def test_train_rejects_unknown_config_fields_with_exit_2(run_cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model_name_or_path: embedded\nlearning_rat: 0.1\n")
    code, _, err = run_cli("rm", "train", "--config", config)
    assert code == 2
    assert "learning_rat" in err and "Traceback" not in err


def test_train_on_a_malformed_row_names_file_line_and_field(run_cli, tmp_path, pairs_file):
    bad = tmp_path / "bad.jsonl"
    lines = pairs_file.read_text().splitlines()
    row = json.loads(lines[1])
    row["chosen"][0]["role"] = "robot"
    bad.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n")
    code, _, err = run_cli("rm", "train", "--config", TINY_CONFIG, "--train_data", bad, "--output_dir", tmp_path / "r")
    assert code == 2
    assert f"{bad}:2: chosen[0].role" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_writes_json_markdown_and_histogram_with_baselines(run_cli, tmp_path, trained_tiny_rm, pairs_file):
    _, model_dir = trained_tiny_rm
    code, out, err = run_cli("rm", "eval", "--model", model_dir, "--data", pairs_file, "-o", tmp_path / "eval",
                             "--bootstrap", "200")
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n"] == 12
    assert report["ci95"][0] <= report["accuracy"] <= report["ci95"][1]
    assert set(report["baselines"]) == {"prefer_longer", "prefer_shorter"}
    assert report["baselines"]["prefer_longer"]["accuracy"] + report["baselines"]["prefer_shorter"]["accuracy"] == \
        pytest.approx(1.0)
    assert set(report["groups"]["source"]) == {"even", "odd"}
    assert (tmp_path / "eval" / "rewards.png").read_bytes()[:4] == b"\x89PNG"
    assert "| reward model |" in (tmp_path / "eval" / "report.md").read_text()
    assert "baseline: prefer longer" in out


def test_score_writes_pairs_and_per_turn_rewards_and_resumes(run_cli, tmp_path, trained_tiny_rm, pairs_file):
    _, model_dir = trained_tiny_rm
    output = tmp_path / "scores.jsonl"
    code, _, err = run_cli("rm", "score", "--model", model_dir, "--input", pairs_file, "-o", output,
                           "--per-turn", "--no-progress", "--limit", "5")
    assert code == 0, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 5
    first = records[0]
    pair = synthetic_pairs(12, seed=3)[0]
    assert len(first["chosen_turn_rewards"]) == len(pair.chosen.assistant_indices())
    code, _, err = run_cli("rm", "score", "--model", model_dir, "--input", pairs_file, "-o", output,
                           "--per-turn", "--no-progress")
    assert code == 0, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 12
    assert len({r["id"] for r in records}) == 12


def test_eval_of_a_missing_model_is_exit_2(run_cli, tmp_path, pairs_file):
    code, _, err = run_cli("rm", "eval", "--model", tmp_path / "nope", "--data", pairs_file, "-o", tmp_path / "e")
    assert code == 2
    assert "nope" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_saves_a_model_loadable_by_from_pretrained(run_cli, tmp_path, lora_tiny_rm, pairs_file, bits):
    from transformers import AutoModelForSequenceClassification

    from rm.model import RewardModel

    _, model_dir = lora_tiny_rm
    output = tmp_path / f"q{bits}"
    code, out, err = run_cli("rm", "quantize", "--model", model_dir, "--bits", str(bits), "-o", output,
                             "--data", pairs_file)
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["memory_bytes_after"] < info["memory_bytes_before"]
    assert abs(info["accuracy_change_points"]) <= 100
    loaded = AutoModelForSequenceClassification.from_pretrained(str(output))
    assert getattr(loaded, f"is_loaded_in_{bits}bit")
    quantized = RewardModel.load(output, device="cpu")
    reference = RewardModel.load(model_dir, device="cpu")
    conversations = [p.chosen for p in synthetic_pairs(4, seed=4)]
    assert quantized.score(conversations) == pytest.approx(reference.score(conversations), abs=0.25)


def test_quantize_keep_float_patterns_join_the_head_in_the_skip_list():
    import torch

    from rm.quantize import quantization_config

    config = quantization_config(4, ["score"], torch.device("cpu"), [".*attention"])
    assert config.llm_int8_skip_modules == ["score", ".*attention"]
    assert quantization_config(8, ["classifier"], torch.device("cpu")).llm_int8_skip_modules == ["classifier"]
