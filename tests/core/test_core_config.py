"""TRL-style configs: YAML values, CLI overrides, type checks, and lazily imported config commands."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from chat.config import add_config_command, add_dataclass_arguments, build_config, config_from_args
from chat.errors import ConfigError


@dataclass
class ExampleConfig:
    learning_rate: float = field(default=1e-4, metadata={"help": "step size"})
    steps: int = field(default=10, metadata={"help": "optimizer steps"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16"})
    targets: list[str] = field(default_factory=lambda: ["q_proj"], metadata={"help": "LoRA targets"})
    kwargs: dict | str | None = field(default=None, metadata={"help": "mapping or JSON string"})


def _parse(argv: list[str]) -> ExampleConfig:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, ExampleConfig)
    return config_from_args(ExampleConfig, parser.parse_args(argv))


def test_cli_flags_override_yaml_and_untyped_flags_keep_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 2e-6\nsteps: 2500\nbf16: true\n")
    config = _parse(["--config", str(path), "--steps", "7"])
    assert (config.learning_rate, config.steps, config.bf16, config.targets) == (2e-6, 7, True, ["q_proj"])


def test_list_and_union_fields_accept_yaml_structures(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: [q_proj, v_proj]\nkwargs: {use_reentrant: false}\n")
    config = _parse(["--config", str(path)])
    assert config.targets == ["q_proj", "v_proj"] and config.kwargs == {"use_reentrant": False}
    assert _parse(["--kwargs", "{use_reentrant: true}"]).kwargs == {"use_reentrant": True}


def test_unknown_field_names_the_source(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rat: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown field\(s\) learning_rat for ExampleConfig"):
        _parse(["--config", str(path)])


@pytest.mark.parametrize("values, message", [
    ({"steps": "many"}, "steps: expected int, got 'many'"),
    ({"bf16": "maybe"}, "bf16: expected bool"),
    ({"learning_rate": [1]}, "learning_rate: expected float"),
])
def test_wrong_types_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config(ExampleConfig, values, source="cfg")


def test_invalid_yaml_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 1\n  bad: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        _parse(["--config", str(path)])


def test_config_command_builds_its_options_from_the_class_named_when_run():
    parser = argparse.ArgumentParser()
    group = parser.add_subparsers(dest="command")
    seen = {}
    add_config_command(group, "train", help="h", description="d", config_class="test_core_config:ExampleConfig",
                       func=lambda args: seen.setdefault("config", config_from_args(ExampleConfig, args)))
    args, extra = parser.parse_known_args(["train", "--steps", "3", "--bf16", "yes"])
    args.extra_args = extra
    args.func(args)
    assert (seen["config"].steps, seen["config"].bf16) == (3, True)
