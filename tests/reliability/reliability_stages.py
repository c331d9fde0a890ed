"""The LLM stage commands of the reliability suite: small inputs, command lines, and running them in-process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

import app.cli


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def pairs_input(folder: Path) -> Path:
    rows = []
    for i in range(5):
        prompt = {"role": "user", "content": f"Question {i}: how do I {['cook rice', 'sort a list', 'plant a tree', 'write a haiku', 'fix a bike'][i]}?"}
        rows.append({"id": f"p{i}", "chosen": [prompt, {"role": "assistant", "content": f"Good answer {i}."}],
                     "rejected": [prompt, {"role": "assistant", "content": f"Bad answer {i}."}]})
    return write_jsonl(folder / "pairs.jsonl", rows)


def alpaca_input(folder: Path) -> Path:
    topics = ["rivers", "budgets", "chess openings", "sourdough bread", "prime numbers", "solar panels"]
    return write_jsonl(folder / "seeds.jsonl", [
        {"id": f"s{i}", "instruction": f"Explain {topic} to a beginner.", "input": "",
         "output": f"{topic.capitalize()} are a broad subject with many parts."} for i, topic in enumerate(topics)])


def documents_input(folder: Path) -> Path:
    names = ["Aldora", "Brevik", "Castell", "Dunmore"]
    return write_jsonl(folder / "docs.jsonl", [
        {"id": f"d{i}", "content": f"{name} is a town founded in {1700 + 13 * i} by settlers from the coast. "
                                   f"{name} was led by a council of {i + 3} elders for a century. "
                                   "Its market trades wool, timber and fish."}
        for i, name in enumerate(names)])


@dataclass(frozen=True)
class Stage:
    """One LLM stage command: how to make its input, its command line, and which `backends:` role it calls."""

    command: str
    make_input: Callable[[Path], Path]
    input_flag: str
    backend_role: str
    options: tuple[str, ...] = ()

    def argv(self, input_path: Path, output: Path, config: Path) -> list[str]:
        return [*self.command.split(), self.input_flag, str(input_path), "-o", str(output), "--config", str(config),
                *self.options]


STAGES: dict[str, Stage] = {stage.command: stage for stage in [
    Stage("augment music", pairs_input, "--input", "simulator",
          ("--turns", "3", "--max_tokens", "64", "--concurrency", "4")),
    Stage("judge pairs", pairs_input, "--input", "judge", ("--judge", "llm-pairwise", "--no-progress")),
    Stage("judge grade", pairs_input, "--input", "judge", ("--judge", "llm-grade", "--no-progress")),
    Stage("generate review-instruct", alpaca_input, "--seeds", "default",
          ("--reviewers", "2", "--rounds", "2", "--concurrency", "4")),
    Stage("generate sedi", alpaca_input, "--seeds", "default",
          ("--mode", "self-instruct", "--iterations", "2", "--requests_per_iteration", "3", "--seed_examples", "2",
           "--machine_examples", "1", "--instructions_per_call", "2")),
    Stage("generate coevol", alpaca_input, "--input", "default", ("--iterations", "2", "--concurrency", "4")),
    Stage("generate mimg", documents_input, "--docs", "default",
          ("--max_hops", "2", "--concurrency", "4")),
]}


def write_config(path: Path, role: str, backend: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"backends": {role: backend}}), encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str]) -> CliResult:
    """`turnwise ARGV` in-process with stdout/stderr captured (log records go to pytest's capture)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = app.cli.main([str(a) for a in argv])
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers
                                       if getattr(h, "stream", None) not in (out, err)]
    return CliResult(code, out.getvalue(), err.getvalue())


def jsonl_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file parsed; a torn or corrupt line fails the test with its number."""
    rows = []
    raw = path.read_bytes()
    assert not raw or raw.endswith(b"\n"), f"{path}: last line is torn (no newline)"
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path}:{number}: not JSON ({exc.msg}): {line[:120]!r}") from None
    return rows


def assert_all_files_parse(folder: Path) -> None:
    """Every .jsonl / .json file under `folder` parses completely."""
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".jsonl":
            jsonl_lines(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


#: Fields whose values depend on timing or on how many attempts a call took, not on the replies.
VOLATILE_KEYS = {"usage", "time", "elapsed_s", "latency_s", "started", "finished", "created", "cached", "cache_hits",
                 "calls", "wall_s", "seconds", "duration_s"}


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def outputs_of(folder: Path, output: Path) -> dict[str, list[Any]]:
    """The stage's record files (`OUT` and `OUT.*.jsonl`, not the error log), rows normalised and sorted."""
    files = {}
    for path in sorted(folder.glob(output.name + "*")):
        if path.suffix != ".jsonl" or path.name.endswith(".errors.jsonl"):
            continue
        rows = [normalized(row) for row in jsonl_lines(path)]
        files[path.name] = sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))
    return files


def ids_of(path: Path) -> list[str]:
    return [str(row["id"]) for row in jsonl_lines(path)] if path.exists() else []
