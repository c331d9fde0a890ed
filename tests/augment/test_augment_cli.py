"""`turnwise augment music` from the command line: config file, printed summary, one-line errors."""

from __future__ import annotations

import json

import yaml

from app.cli import main

SWAP = json.dumps({"swapped_instruction": "Describe a sunrise instead.", "reason": "different scene"})


def test_music_cli_runs_from_a_config_and_prints_kept_and_dropped(tmp_path, capsys):
    # Every request gets the same reply, so both branches say the same thing: the pair is dropped.
    config = {"backends": {"simulator": {"kind": "scripted", "replies": [SWAP] * 10}}, "turns": 1,
              "divergence": "final"}
    (tmp_path / "music.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "seeds.jsonl").write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    code = main(["augment", "music", "--input", str(tmp_path / "seeds.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                 "--config", str(tmp_path / "music.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert "pairs kept this run: 0; dropped: 1 (identical_after_divergence 1)" in out
    log = (tmp_path / "out.jsonl.seeds.jsonl").read_text()
    assert '"dropped": "identical_after_divergence"' in log


def test_music_cli_flags_override_the_config_and_bad_values_exit_2(tmp_path, capsys):
    (tmp_path / "seeds.jsonl").write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    code = main(["augment", "music", "--input", str(tmp_path / "seeds.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                 "--divergence", "fixed"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "turnwise: error: divergence_turn: required with divergence=fixed"


def test_music_cli_missing_input_is_one_line(tmp_path, capsys):
    config = {"backends": {"simulator": {"kind": "scripted", "replies": ["x"]}}}
    (tmp_path / "music.yaml").write_text(yaml.safe_dump(config))
    code = main(["augment", "music", "--input", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                 "--config", str(tmp_path / "music.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope.jsonl" in err


def test_shipped_augment_configs_are_valid():
    from pathlib import Path

    from augment.config import MusicConfig
    from chat.config import build_config, load_yaml

    configs = sorted((Path(__file__).resolve().parents[2] / "configs" / "augment").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        config = build_config(MusicConfig, load_yaml(path), source=str(path))
        assert "simulator" in config.backends
