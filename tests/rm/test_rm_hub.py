"""Hub round trip without a network: push a LoRA RM to a local hub-like folder, load it back by id."""

from __future__ import annotations

import fnmatch
import json
import shutil
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest

from chat.errors import ConfigError
from rm.model import METADATA_FILE, RewardModel
from rm_helpers import synthetic_pairs, tiny_config


class LocalHub:
    """Stands in for the hub: repositories are folders under `root`; records what each upload contained."""

    def __init__(self, root: Path):
        self.root = root
        self.uploads: list[tuple[str, set[str]]] = []

    def repo(self, repo_id: str) -> Path:
        return self.root / repo_id

    # transformers' Trainer calls these on `hf_api()`
    def create_repo(self, repo_id: str, **_: object) -> SimpleNamespace:
        self.repo(repo_id).mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id: str, folder_path: str, ignore_patterns=(), path_in_repo=None,
                      run_as_future: bool = False, **_: object):
        source, target = Path(folder_path), self.repo(repo_id) / (path_in_repo or "")
        names = set()
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_dir() or any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative.split("/")[0], p)
                                    for p in ignore_patterns):
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
            names.add(relative)
        self.uploads.append((repo_id, names))
        info = SimpleNamespace(commit_url=f"local://{repo_id}")
        if not run_as_future:
            return info
        future: Future = Future()
        future.set_result(info)
        return future

    # huggingface_hub's functions that RewardModel.load uses
    def file_exists(self, repo_id: str, filename: str, **_: object) -> bool:
        return (self.repo(repo_id) / filename).is_file()

    def snapshot_download(self, repo_id: str, ignore_patterns=(), **_: object) -> str:
        if not self.repo(repo_id).is_dir():
            raise FileNotFoundError(f"404 Client Error: Repository Not Found for url: {repo_id}")
        return str(self.repo(repo_id))


@pytest.fixture
def hub(tmp_path, monkeypatch) -> LocalHub:
    import huggingface_hub
    import transformers.trainer

    local = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: local)
    monkeypatch.setattr(huggingface_hub, "file_exists", local.file_exists)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", local.snapshot_download)
    return local


@pytest.mark.slow
def test_lora_rm_pushed_and_loaded_by_id_scores_like_the_original(hub, tmp_path, tiny_base_dir, train_pairs):
    from rm.train import train_reward_model

    output = tmp_path / "lora-rm"
    config = tiny_config(output, use_peft=True, model_config=None, model_name_or_path=str(tiny_base_dir),
                         tokenizer_name_or_path=None, max_steps=6, push_to_hub=True, hub_model_id="org/tiny-lora-rm",
                         save_strategy="steps", save_steps=3)
    result = train_reward_model(config, train_pairs, synthetic_pairs(4, seed=9))

    # Every upload (checkpoint pushes and the final one) already carried the metadata; the last one the card.
    assert len(hub.uploads) >= 2 and all(METADATA_FILE in names for _, names in hub.uploads)
    assert "README.md" in hub.uploads[-1][1] and "adapter_config.json" in hub.uploads[-1][1]
    pushed = hub.repo("org/tiny-lora-rm")
    metadata = json.loads((pushed / METADATA_FILE).read_text())
    assert metadata["max_length"] == 512 and metadata["head"] == ["score"] and metadata["chat_template"]
    assert metadata["result"]["global_step"] == result.global_step == 6
    card = (pushed / "README.md").read_text()
    assert "## Recipe" in card and "| lora_r | 16 |" in card and "eval_accuracy" in card

    original = RewardModel.load(output, device="cpu")
    by_id = RewardModel.load("org/tiny-lora-rm", device="cpu")
    conversations = [p.chosen for p in synthetic_pairs(6, seed=5)] + [p.rejected for p in synthetic_pairs(6, seed=5)]
    assert by_id.score(conversations) == pytest.approx(original.score(conversations), abs=1e-4)
    assert by_id.name == "org/tiny-lora-rm" and by_id.encoder.max_length == 512


@pytest.mark.slow
def test_full_rm_loads_by_id(hub, trained_tiny_rm):
    _, directory = trained_tiny_rm
    shutil.copytree(directory, hub.repo("org/full-rm"))
    conversations = [p.chosen for p in synthetic_pairs(4, seed=6)]
    by_id = RewardModel.load("org/full-rm", device="cpu")
    assert by_id.score(conversations) == pytest.approx(RewardModel.load(directory, device="cpu").score(conversations),
                                                       abs=1e-6)


def test_unreachable_hub_is_a_clear_config_error(hub):
    with pytest.raises(ConfigError, match="org/missing: no such directory, and cannot fetch it from the hub"):
        RewardModel.load("org/missing", device="cpu")


def test_final_save_writes_a_model_card_without_push(trained_tiny_rm):
    _, directory = trained_tiny_rm
    card = (directory / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "Randomly initialised from `model_config` (gemma2)" in card and "Trained 20 steps" in card
    assert "| eval_accuracy |" in card
