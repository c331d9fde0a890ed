"""One Generator registry: the CLI, `turnwise list generators`, the pipeline's generate stage and its estimate all
read it, so a method registered once appears in each of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from pipeline_helpers import SEED_TASKS, config_values, write_config
import pytest

from app.cli import build_parser, main
from chat.runner import FilteredRunResult
from generate.registry import GENERATORS, SEEDS, ExpectedCalls, Generator, load_generators
from pipeline.config import PipelineConfig
from pipeline.estimate import estimate_stage
from pipeline.report import llm_sections
from pipeline.stages import StageContext, generate_section, pipeline_generators

METHODS = {"coevol", "mimg", "review-instruct", "sedi"}


@dataclass
class EchoConfig:
    """Configuration of the fake `echo` generator."""

    calls_per_seed: int = field(default=2, metadata={"help": "Calls per seed."})
    rm: str | None = field(default=None, metadata={"help": "Reward model path."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N seeds."})


def echo_run(seeds: str, output: Path, config: EchoConfig, **options) -> SimpleNamespace:
    Path(output).write_text(f"{seeds} x {config.calls_per_seed}\n", encoding="utf-8")
    return SimpleNamespace(code=0)


def echo_calls(config: EchoConfig, seeds: int | None, input_tokens: float) -> ExpectedCalls:
    return ExpectedCalls(seeds * config.calls_per_seed, seeds * config.calls_per_seed, 16, input_tokens,
                         f"echo {seeds} seeds")


ECHO = Generator(name="echo", description="a fifth generator, registered by a test", help="echo the seeds",
                 about="Writes the seed path.", config=EchoConfig, input=SEEDS, input_help="seed tasks",
                 run=echo_run, result=FilteredRunResult, unit="seeds", produces="echoed seeds",
                 expected_calls=echo_calls, report=lambda result, output: f"echoed into {output}",
                 exit_code=lambda result: result.code)


@pytest.fixture
def echo_registered(monkeypatch):
    load_generators()
    monkeypatch.setitem(GENERATORS._items, ECHO.name, (ECHO, ECHO.description))


def test_every_method_package_registers_one_generator():
    generators = {generator.name: generator for generator in load_generators()}
    assert set(generators) == METHODS
    assert {name: g.input.flag for name, g in generators.items()} == {
        "coevol": "--input", "mimg": "--docs", "review-instruct": "--seeds", "sedi": "--seeds"}
    assert {name: g.export.flag for name, g in generators.items() if g.export} == {
        "review-instruct": "--sharegpt", "sedi": "--alpaca"}


def test_each_generator_subcommand_keeps_its_input_flag():
    parser = build_parser()
    args = parser.parse_args(["generate", "mimg", "--docs", "a.jsonl", "b.txt", "-o", "out.jsonl"])
    assert args.docs == ["a.jsonl", "b.txt"] and args.generator.name == "mimg"
    args = parser.parse_args(["generate", "coevol", "--input", "alpaca.json", "-o", "out.jsonl", "--judge", "llm"])
    assert args.input == "alpaca.json" and args.judge == "llm"
    args = parser.parse_args(["generate", "review-instruct", "--seeds", "s.jsonl", "-o", "o.jsonl",
                              "--sharegpt", "share.json", "--rounds", "3"])
    assert (args.seeds, args.sharegpt, args.rounds) == ("s.jsonl", Path("share.json"), 3)
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "sedi", "--input", "s.jsonl", "-o", "o.jsonl"])


def test_a_registered_generator_is_a_cli_subcommand(echo_registered, tmp_path, capsys):
    output = tmp_path / "echo.jsonl"
    assert main(["generate", "echo", "--seeds", "seeds.jsonl", "-o", str(output), "--calls_per_seed", "3"]) == 0
    assert output.read_text() == "seeds.jsonl x 3\n"
    assert capsys.readouterr().out.strip() == f"echoed into {output}"


def test_a_registered_generator_is_listed(echo_registered, capsys):
    assert main(["list", "generators"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert sorted(names) == sorted({*METHODS, "echo"})


def test_a_registered_generator_is_seen_by_the_pipeline_and_its_estimate(echo_registered, tmp_path):
    values = config_values(tmp_path / "run")
    values["generate"] = {"seeds": SEED_TASKS, "echo": {"calls_per_seed": 5, "limit": 4}}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    assert "echo" in {generator.name for generator in pipeline_generators()}
    assert [generator.name for generator in generate_section(ctx)[1]] == ["echo"]
    assert ("generate", "echo", "echoed seeds") in llm_sections()
    estimate = estimate_stage(ctx, "generate")
    assert (estimate.calls, estimate.note) == (20, "echo 4 seeds")


def test_the_pipeline_runs_the_generators_with_one_runner_result():
    assert {generator.name for generator in pipeline_generators()} == METHODS - {"mimg"}
