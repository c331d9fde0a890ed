"""Bad inputs for every `turnwise` command that reads files or configs: missing file, empty file, a broken JSON
line in the middle, a field of the wrong type, a config with an unknown key, invalid YAML. Each is exit 2, exactly
one line on stderr naming the problem, no traceback, and nothing written at the output path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from reliability_stages import run_cli

USER = {"role": "user", "content": "How do I boil an egg?"}


def pair(i: int) -> dict:
    return {"id": f"p{i}", "chosen": [USER, {"role": "assistant", "content": f"Gently, {i} minutes."}],
            "rejected": [USER, {"role": "assistant", "content": "Throw it."}]}


def alpaca(i: int) -> dict:
    return {"id": f"s{i}", "instruction": f"Explain topic {i}.", "input": "", "output": f"Topic {i} is simple."}


def document(i: int) -> dict:
    return {"id": f"d{i}", "content": f"Town {i} was founded long ago by settlers from the coast."}


def verdict(i: int) -> dict:
    return {"id": f"p{i}", "judge": "j", "winner": "A"}


def conversation(i: int) -> dict:
    return {"id": f"c{i}", "messages": [USER, {"role": "assistant", "content": f"Answer {i}."}]}


@dataclass(frozen=True)
class Kind:
    """A kind of input file: a good row, and a row with one field of the wrong type (-> that field named)."""

    good: Callable[[int], dict]
    wrong_type: dict
    field: str


KINDS = {
    "pairs": Kind(pair, {**pair(1), "chosen": 5}, "chosen"),
    "alpaca": Kind(alpaca, {**alpaca(1), "instruction": 5}, "instruction"),
    "documents": Kind(document, {**document(1), "content": 5}, "content"),
    "verdicts": Kind(verdict, {**verdict(1), "winner": 5}, "winner"),
    "conversations": Kind(conversation, {**conversation(1), "messages": 5}, "messages"),
}


@dataclass(frozen=True)
class Command:
    """A command line with {input} (the file under test), {good_pairs}, {output} and {config} placeholders."""

    argv: str
    kind: str
    output: str = "out/out.jsonl"
    #: the `backends:` role of its config (None: the command takes no --config)
    role: str | None = None
    #: options that make invalid rows an error (where the default skips and counts them)
    strict: str = ""

    @property
    def takes_config(self) -> bool:
        return self.role is not None  # "" = a config without backends

    def build(self, tmp: Path, input_path: Path, config: Path | None = None) -> list[str]:
        good_pairs = write(tmp / "good_pairs.jsonl", [pair(i) for i in range(3)])
        # a valid config whose backend is never reached (nothing listens on port 9): no model is loaded
        unreachable = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "cache": False}
        backends = {"backends": {self.role: unreachable}} if self.role else {}
        default_config = write_yaml(tmp / "ok.yaml", json.dumps(backends))
        values = {"input": input_path, "good_pairs": good_pairs, "output": tmp / self.output,
                  "config": config or default_config, "missing": tmp / "no_such_model"}
        return [part.format(**values) for part in f"{self.argv} {self.strict}".split()]


FAIL = "--input_on_error fail"
COMMANDS = {
    "data inspect": Command("data inspect {input}", "pairs", output=""),
    "data convert": Command("data convert {input} -o {output}", "pairs"),
    "augment music": Command("augment music --input {input} -o {output} --config {config}", "pairs", role="simulator",
                             strict=FAIL),
    "augment mix": Command("augment mix --original {input} --augmented {good_pairs} -o {output}", "pairs"),
    "augment inspect": Command("augment inspect {input}", "pairs", output=""),
    "rm eval": Command("rm eval --model {missing} --data {input} -o {output}", "pairs", output="out/eval"),
    "rm score": Command("rm score --model {missing} --input {input} -o {output}", "pairs"),
    "rm train": Command("rm train --config {config} --train_data {input} --output_dir {output} --max_steps 1",
                        "pairs", output="out/rm", role=""),
    "judge pairs": Command("judge pairs --input {input} -o {output} --config {config} --no-progress", "pairs",
                           role="judge"),
    "judge grade": Command("judge grade --input {input} -o {output} --config {config} --no-progress", "pairs",
                           role="judge"),
    "judge agree": Command("judge agree --a {input} --b {input} -o {output}", "verdicts", output="out/agree"),
    "generate review-instruct": Command("generate review-instruct --seeds {input} -o {output} --config {config}",
                                        "alpaca", role="default", strict=FAIL),
    "generate sedi": Command("generate sedi --seeds {input} -o {output} --config {config}", "alpaca",
                             role="default", strict=FAIL),
    "generate coevol": Command("generate coevol --input {input} -o {output} --config {config}", "alpaca",
                               role="default", strict=FAIL),
    "generate mimg": Command("generate mimg --docs {input} -o {output} --config {config}", "documents",
                             role="default", strict=FAIL),
    "generate stats": Command("generate stats {input} --plots {output} --no-embeddings", "conversations",
                              output="out/plots"),
}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def input_file(tmp: Path, kind: Kind, case: str) -> tuple[Path, str]:
    """(the bad input, a text the error line must contain)."""
    path = tmp / "input.jsonl"
    if case == "missing":
        return path, str(path)
    if case == "empty":
        path.write_bytes(b"")
        return path, str(path)
    if case == "broken JSON in the middle":
        rows = [json.dumps(kind.good(0)), '{"id": "x", "oops', json.dumps(kind.good(2))]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path, f"{path}:2"
    if case == "wrong field type":
        write(path, [kind.good(0), kind.wrong_type, kind.good(2)])
        return path, f"{path}:2: {kind.field}"
    raise ValueError(case)


def assert_clean_failure(tmp: Path, command: Command, argv: list[str], needle: str) -> None:
    result = run_cli(argv)
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]
    if command.output:
        written = tmp / command.output
        assert not written.exists() or (written.is_dir() and not any(written.iterdir())), \
            sorted(str(p) for p in tmp.rglob("*"))
        assert not any((tmp / "out").glob("*")) if (tmp / "out").exists() else True, sorted((tmp / "out").glob("*"))


INPUT_CASES = ["missing", "empty", "broken JSON in the middle", "wrong field type"]
#: rm commands load the (here missing) model before reading data: only the missing-model case applies.
MODEL_FIRST = {"rm eval", "rm score"}


ROW_CASES = ["broken JSON in the middle", "wrong field type"]


#: data inspect reports invalid rows instead of failing (test_inspect_lists_invalid_rows_by_line)
FILE_CASES = [(name, case) for name in COMMANDS if name not in MODEL_FIRST for case in INPUT_CASES
              if not (name == "data inspect" and case in ROW_CASES)]


@pytest.mark.parametrize("name, case", FILE_CASES, ids=[f"{name}-{case}" for name, case in FILE_CASES])
def test_bad_input_file_is_one_line_exit_2_and_nothing_written(name, case, tmp_path):
    command = COMMANDS[name]
    path, needle = input_file(tmp_path, KINDS[command.kind], case)
    assert_clean_failure(tmp_path, command, command.build(tmp_path, path), needle)


@pytest.mark.parametrize("case", ROW_CASES)
def test_inspect_lists_invalid_rows_by_line(case, tmp_path):
    path, needle = input_file(tmp_path, KINDS["pairs"], case)
    result = run_cli(["data", "inspect", str(path)])
    assert result.code == 0 and result.stderr == ""
    assert "rows:     3 (2 valid, 1 invalid)" in result.stdout
    assert needle in result.stdout.split("invalid rows: 1")[1]


@pytest.mark.parametrize("name", sorted(MODEL_FIRST))
def test_rm_command_with_a_missing_model_is_one_line(name, tmp_path):
    command = COMMANDS[name]
    good = write(tmp_path / "pairs.jsonl", [pair(i) for i in range(3)])
    assert_clean_failure(tmp_path, command, command.build(tmp_path, good), "no_such_model")


CONFIG_CASES = {
    "unknown key": ("no_such_option: 3\n", "no_such_option"),
    "invalid YAML": ("backends: [unclosed\n  - x: {\n", "config.yaml"),
    "not a mapping": ("- just\n- a list\n", "config.yaml"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
@pytest.mark.parametrize("name", [name for name, command in COMMANDS.items() if command.takes_config])
def test_bad_config_is_one_line_exit_2_and_nothing_written(name, case, tmp_path):
    command = COMMANDS[name]
    text, needle = CONFIG_CASES[case]
    config = write_yaml(tmp_path / "config.yaml", text)
    good = write(tmp_path / "input.jsonl", [KINDS[command.kind].good(i) for i in range(3)])
    assert_clean_failure(tmp_path, command, command.build(tmp_path, good, config), needle)


@pytest.mark.parametrize("argv, needle", [
    ("serve --port -5", "port"),
    ("serve --model {missing}", "no_such_model"),
    ("rm serve --model {missing} --port 0", "no_such_model"),
    ("judge bon --rm-a {missing} --rm-b {missing} --prompts {input} -o {output} --config {config}", "no_such_option"),
], ids=["serve-bad-port", "serve-missing-model", "rm-serve-missing-model", "bon-unknown-config-key"])
def test_servers_and_bon_with_bad_arguments_are_one_line(argv, needle, tmp_path):
    command = Command(argv, "pairs")
    good = write(tmp_path / "input.jsonl", [pair(i) for i in range(3)])
    config = write_yaml(tmp_path / "config.yaml", "no_such_option: 1\n")
    assert_clean_failure(tmp_path, command, command.build(tmp_path, good, config), needle)
