"""Shipped configs: every RM config parses, the 9B ones carry the paper's recipe, accelerate configs are complete."""

from __future__ import annotations

import pytest

from chat.config import build_config, load_yaml
from rm.config import RMTrainConfig
from rm_helpers import REPO_ROOT

RM_CONFIGS = sorted((REPO_ROOT / "configs" / "rm").glob("*.yaml"))
ACCELERATE_CONFIGS = {path.stem: path for path in (REPO_ROOT / "configs" / "accelerate").glob("*.yaml")}


def test_expected_configs_exist():
    assert {p.stem for p in RM_CONFIGS} >= {"gemma2-9b-it-qlora", "gemma2-9b-it-full", "cpu-minilm", "tiny-gemma2"}
    assert set(ACCELERATE_CONFIGS) >= {"ddp", "fsdp", "deepspeed-zero3"}


@pytest.mark.parametrize("path", RM_CONFIGS, ids=lambda p: p.stem)
def test_rm_config_parses(path):
    values = load_yaml(path)
    values["bf16"] = False  # bf16 needs a GPU; everything else must parse here
    config = build_config(RMTrainConfig, values, source=str(path))
    assert config.max_length is not None


@pytest.mark.parametrize("name", ["gemma2-9b-it-qlora", "gemma2-9b-it-full"])
def test_gemma2_9b_configs_follow_the_paper(name):
    values = load_yaml(REPO_ROOT / "configs" / "rm" / f"{name}.yaml")
    assert values["model_name_or_path"] == "google/gemma-2-9b-it"
    assert values["attn_implementation"] == "eager"
    assert values["max_length"] == 2048 and values["max_steps"] == 2500
    assert values["bf16"] is True and values["gradient_checkpointing"] is True
    per_step = values["per_device_train_batch_size"] * values["gradient_accumulation_steps"]
    assert per_step * (8 if name.endswith("full") else 1) == 64


def test_qlora_config_is_nf4_double_quant_bf16_compute():
    values = load_yaml(REPO_ROOT / "configs" / "rm" / "gemma2-9b-it-qlora.yaml")
    assert values["use_peft"] and values["load_in_4bit"]
    assert values["bnb_4bit_quant_type"] == "nf4" and values["bnb_4bit_use_double_quant"]
    assert values["bnb_4bit_compute_dtype"] == "bfloat16"


def test_full_config_uses_the_papers_learning_rate():
    assert load_yaml(REPO_ROOT / "configs" / "rm" / "gemma2-9b-it-full.yaml")["learning_rate"] == 2e-6


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero3", "DEEPSPEED")])
def test_accelerate_configs(name, kind):
    values = load_yaml(ACCELERATE_CONFIGS[name])
    assert values["distributed_type"] == kind
    assert values["mixed_precision"] == "bf16" and values["num_processes"] >= 2
    if kind == "DEEPSPEED":
        assert values["deepspeed_config"]["zero_stage"] == 3
    if kind == "FSDP":
        assert values["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "Gemma2DecoderLayer"


def test_quantized_base_without_lora_is_rejected():
    from chat.errors import ConfigError

    with pytest.raises(ConfigError, match="use_peft"):
        build_config(RMTrainConfig, {"load_in_4bit": True})
