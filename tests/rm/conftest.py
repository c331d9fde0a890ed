"""Fixtures for rm/ tests: a tiny random Gemma-2 RM with the real Gemma tokenizer, synthetic pairs, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.conversation import PreferencePair
from rm_helpers import synthetic_pairs, tiny_config


@pytest.fixture(scope="session")
def gemma_tokenizer():
    from transformers import AutoTokenizer

    from chat.embedded import model_dir

    return AutoTokenizer.from_pretrained(str(model_dir("gemma3-270m")))


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, gemma_tokenizer) -> Path:
    """A saved random tiny Gemma-2 sequence classifier (untrained head) with the Gemma tokenizer."""
    from rm.train import build_model

    directory = tmp_path_factory.mktemp("tiny-base")
    model = build_model(tiny_config(directory), gemma_tokenizer)
    model.save_pretrained(str(directory))
    gemma_tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def train_pairs() -> list[PreferencePair]:
    return synthetic_pairs(48, seed=1)


@pytest.fixture(scope="session")
def eval_pairs() -> list[PreferencePair]:
    return synthetic_pairs(16, seed=2)


@pytest.fixture(scope="session")
def trained_tiny_rm(tmp_path_factory, train_pairs, eval_pairs):
    """A tiny Gemma-2 RM fully trained for 20 steps: (TrainResult, directory)."""
    from rm.train import train_reward_model

    directory = tmp_path_factory.mktemp("tiny-rm")
    result = train_reward_model(tiny_config(directory), train_pairs, eval_pairs)
    return result, directory


@pytest.fixture(scope="session")
def lora_tiny_rm(tmp_path_factory, tiny_base_dir, train_pairs):
    """A LoRA RM on the saved tiny base: (TrainResult, directory)."""
    from rm.train import train_reward_model

    directory = tmp_path_factory.mktemp("tiny-lora")
    config = tiny_config(directory, use_peft=True, model_config=None, model_name_or_path=str(tiny_base_dir),
                         tokenizer_name_or_path=None, max_steps=10)
    result = train_reward_model(config, train_pairs, [])
    return result, directory


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `turnwise ...` in-process with only the rm command registered; returns (exit code, stdout, stderr)."""
    import app.cli

    monkeypatch.setattr(app.cli, "COMMAND_MODULES", ("rm.cli",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = app.cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
