"""Training: Bradley-Terry loss, collators, truncation instead of dropping, LoRA head saved and reloadable, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rm.model import METADATA_FILE, RewardModel
from rm.trainer import PreferenceCollator, bradley_terry_loss

from rm_helpers import REPO_ROOT, RM_ONLY_CLI, synthetic_pairs, tiny_config, write_pairs


def test_bradley_terry_loss_matches_the_formula():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(2.0)))) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)
    margin = torch.tensor([0.5, 0.5])
    with_margin = -(math.log(1 / (1 + math.exp(-0.5))) + math.log(1 / (1 + math.exp(2.5)))) / 2
    assert bradley_terry_loss(chosen, rejected, margin).item() == pytest.approx(with_margin, rel=1e-6)
    centred = expected + 0.01 * ((1.0 ** 2 + 2.0 ** 2) / 2)
    assert bradley_terry_loss(chosen, rejected, None, 0.01).item() == pytest.approx(centred, rel=1e-6)


def test_padded_and_padding_free_batches_read_the_same_rewards(tiny_base_dir):
    from rm.rewards import rewards_at_positions

    model = RewardModel.load(tiny_base_dir, device="cpu").model
    examples = [{"chosen_ids": [2, 5, 6, 7, 8], "rejected_ids": [2, 9, 10], "margin": 1.0},
                {"chosen_ids": [2, 11, 12], "rejected_ids": [2, 13, 14, 15, 16, 17, 18], "margin": 0.0}]
    padded = PreferenceCollator(pad_token_id=0)(examples)
    packed = PreferenceCollator(pad_token_id=0, padding_free=True)(examples)
    assert packed["input_ids"].shape == (1, 18) and "attention_mask" not in packed
    assert packed["margin"].tolist() == [1.0, 0.0]
    with torch.no_grad():
        a = rewards_at_positions(model, padded["input_ids"], padded["attention_mask"], padded["reward_positions"])
        b = rewards_at_positions(model, packed["input_ids"], None, packed["reward_positions"], packed["position_ids"])
    assert torch.allclose(a, b, atol=1e-5)


def test_training_learns_the_preference_and_writes_metadata(trained_tiny_rm, eval_pairs):
    result, directory = trained_tiny_rm
    assert result.global_step == 20
    assert result.eval_metrics["eval_accuracy"] >= 0.9
    metadata = json.loads((directory / METADATA_FILE).read_text())
    assert metadata["max_length"] == 512 and metadata["result"]["global_step"] == 20
    model = RewardModel.load(directory, device="cpu")
    scores = model.score_pairs(eval_pairs)
    assert sum(c > r for c, r in scores) / len(scores) >= 0.9


def test_long_pairs_are_truncated_not_dropped(tmp_path, train_pairs):
    from rm.train import train_reward_model

    config = tiny_config(tmp_path / "run", max_length=40, max_steps=2, per_device_train_batch_size=8)
    result = train_reward_model(config, train_pairs[:16], [])
    assert result.train_pairs == 16
    truncation = result.truncation["train"]
    assert truncation["sequences"] == 32
    assert truncation["truncated_sequences"] > 0


def test_lora_adapter_saves_the_trained_head(lora_tiny_rm, tiny_base_dir):
    from safetensors import safe_open

    result, directory = lora_tiny_rm
    adapter_config = json.loads((directory / "adapter_config.json").read_text())
    assert "score" in adapter_config["modules_to_save"]
    with safe_open(str(directory / "adapter_model.safetensors"), "pt") as weights:
        head_keys = [k for k in weights.keys() if "score" in k]
    assert head_keys, "the score head must be stored in the adapter file"
    base = RewardModel.load(tiny_base_dir, device="cpu")
    trained = RewardModel.load(directory, device="cpu")
    conversations = [p.chosen for p in synthetic_pairs(4, seed=9)]
    assert trained.score(conversations) != pytest.approx(base.score(conversations), abs=1e-3)


@pytest.mark.slow
def test_lora_rm_reloaded_with_plain_transformers_and_peft_gives_the_same_scores(lora_tiny_rm, tiny_base_dir, tmp_path):
    _, directory = lora_tiny_rm
    model = RewardModel.load(directory, device="cpu")
    conversations = [p.chosen for p in synthetic_pairs(4, seed=5)]
    encoded = [model.encode(c).input_ids for c in conversations]
    ours = model.score(conversations)
    script = textwrap.dedent(f"""
        import json, sys, torch
        from transformers import AutoModelForSequenceClassification
        from peft import PeftModel
        base = AutoModelForSequenceClassification.from_pretrained({str(tiny_base_dir)!r}, num_labels=1,
                                                                  attn_implementation="eager")
        model = PeftModel.from_pretrained(base, {str(directory)!r}).eval()
        scores = []
        with torch.no_grad():
            for ids in json.load(sys.stdin):
                scores.append(model(input_ids=torch.tensor([ids])).logits[0, 0].item())
        print(json.dumps(scores))
    """)
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(encoded), capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert theirs == pytest.approx(ours, abs=1e-4)


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_steps_metrics_and_scores(tmp_path, train_pairs, eval_pairs):
    """SIGKILL `turnwise rm train` once a mid-run checkpoint is complete, resume with `last`, and compare with an
    uninterrupted run of the same config: same global step, same eval metrics, same scores on a fixed set.

    The checkpoint restores weights, AdamW moments, LR schedule, the data order (the sampler is seeded and
    resume skips the consumed batches) and the torch RNG state, so on CPU the resumed run replays the
    uninterrupted one operation for operation: the result is bit-identical, and that is what is asserted.
    """
    data = write_pairs(train_pairs, tmp_path / "pairs.jsonl")
    held_out = write_pairs(eval_pairs, tmp_path / "eval.jsonl")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def command(output):
        return [sys.executable, "-c", RM_ONLY_CLI, "rm", "train", "--config", str(REPO_ROOT / "configs/rm/tiny-gemma2.yaml"),
                "--train_data", str(data), "--eval_data", str(held_out), "--output_dir", str(output),
                "--max_steps", "24", "--save_strategy", "steps", "--save_steps", "8", "--save_total_limit", "2",
                "--disable_tqdm", "true"]

    # The uninterrupted reference runs on the second core while the other run is killed and resumed.
    reference_dir, output = tmp_path / "uninterrupted", tmp_path / "run"
    reference = subprocess.Popen(command(reference_dir), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    process = subprocess.Popen(command(output), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (output / "checkpoint-8" / "trainer_state.json").is_file():  # written last: the checkpoint is complete
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint-8 within 240 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / METADATA_FILE).exists(), "the run finished before it could be killed"
    killed_at = max(int(p.name.split("-")[-1]) for p in output.glob("checkpoint-*"))
    assert killed_at < 24

    resumed = subprocess.run(command(output) + ["--resume_from_checkpoint", "last"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-2000:]
    assert "trained 24 steps" in resumed.stdout

    ours = json.loads((output / METADATA_FILE).read_text())["result"]
    theirs = json.loads((reference_dir / METADATA_FILE).read_text())["result"]
    assert ours["global_step"] == theirs["global_step"] == 24
    metric_names = ("eval_loss", "eval_accuracy", "eval_margin")
    assert {k: ours["eval_metrics"][k] for k in metric_names} == {k: theirs["eval_metrics"][k] for k in metric_names}
    # Training losses logged every 5 steps (the resumed run's log history continues the checkpoint's). Each logged
    # loss is the mean since the previous log *in this process*, so the first log after the resume point (step 10
    # when resumed from 8) averages steps 9-10 only and differs; so does the final `train_loss` summary. Every
    # other logged loss is equal.
    straddling = (killed_at // 5 + 1) * 5 if killed_at % 5 else None
    ours_losses, theirs_losses = (_logged_losses(d / "checkpoint-24") for d in (output, reference_dir))
    assert {s: v for s, v in ours_losses.items() if s != straddling} == \
        {s: v for s, v in theirs_losses.items() if s != straddling}
    resumed_scores = RewardModel.load(output, device="cpu").score_pairs(eval_pairs)
    reference_scores = RewardModel.load(reference_dir, device="cpu").score_pairs(eval_pairs)
    assert resumed_scores == reference_scores


def _logged_losses(checkpoint):
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    losses = {entry["step"]: entry["loss"] for entry in history if "loss" in entry}
    assert sorted(losses) == [5, 10, 15, 20]
    return losses


@pytest.mark.slow
def test_qlora_nf4_training_saves_a_reloadable_adapter_with_head(tmp_path, train_pairs, eval_pairs):
    from peft.utils.other import ModulesToSaveWrapper

    from rm.train import train_reward_model

    config = tiny_config(tmp_path / "qlora", use_peft=True, load_in_4bit=True, max_steps=6,
                         bnb_4bit_compute_dtype="float32")
    result = train_reward_model(config, train_pairs[:24], eval_pairs[:8])
    assert result.global_step == 6
    assert "score" in json.loads((tmp_path / "qlora" / "adapter_config.json").read_text())["modules_to_save"]
    model = RewardModel.load(tmp_path / "qlora", device="cpu")
    assert isinstance(model.model.get_base_model().score, ModulesToSaveWrapper)
    assert len(model.score([p.chosen for p in eval_pairs[:2]])) == 2
