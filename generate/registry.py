"""The one Generator registry: each method package of generate/ registers one `Generator` entry, which the CLI,
`turnwise list generators`, the pipeline's generate stage and its dry-run estimate all read."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chat.registry import Registry, registry


@dataclass(frozen=True)
class InputKind:
    """What a generator reads, and the flag (CLI) / key (pipeline generate section) that names it."""

    name: str
    flag: str
    many: bool = False

    @property
    def key(self) -> str:
        """The argparse destination and the pipeline's generate-section key: the flag without its dashes."""
        return self.flag.lstrip("-")


SEEDS = InputKind("seeds", "--seeds")
CONVERSATIONS = InputKind("conversations", "--input")
DOCUMENTS = InputKind("documents", "--docs", many=True)


@dataclass(frozen=True)
class Export:
    """An optional CLI flag that also exports the kept records in another format (`generate.export`)."""

    flag: str
    format: str
    label: str
    unit: str
    help: str

    @property
    def key(self) -> str:
        return self.flag.lstrip("-")


@dataclass(frozen=True)
class ExpectedCalls:
    """A generator's planned LLM calls (re-asks excluded), their bound with every re-ask, the max_tokens of a reply
    and a rough prompt size per call (history and input, without the role's instructions); read by
    `turnwise run --dry-run`."""

    calls: float
    max_calls: float
    max_tokens: int
    input_tokens: float
    note: str


def filtered_exit_code(result: Any) -> int:
    """The exit code of a run with one runner summary (`chat.runner.FilteredRunResult`)."""
    return result.summary.exit_code


@dataclass(frozen=True)
class Generator:
    """One generation method: what it is, how it is configured and run, and how its cost is planned.

    name: the CLI subcommand and registry name; section: the pipeline's generate-section key (name with `_`).
    description: the `turnwise list generators` line; help / about: the subcommand's --help line and description.
    config: its config dataclass (CLI flags and YAML); input / input_help: what it reads and the flag's help.
    run: `run(input, output, config, *, overwrite, progress, ...) -> result`; result: the type it returns.
    unit: the items of its runner sink (counted in the pipeline); produces: what the pipeline report says it made.
    expected_calls: `(config, rows | None, mean input tokens) -> ExpectedCalls | None` (None: unknown here).
    report: `(result, output) -> str`, what the CLI prints after the run; exit_code: `result -> int`.
    export: the optional export flag of its kept records.
    """

    name: str
    description: str
    help: str
    about: str
    config: type
    input: InputKind
    input_help: str
    run: Callable[..., Any]
    result: type
    unit: str
    produces: str
    expected_calls: Callable[[Any, int | None, float], ExpectedCalls | None]
    report: Callable[[Any, Path], str]
    exit_code: Callable[[Any], int] = filtered_exit_code
    export: Export | None = None

    @property
    def section(self) -> str:
        return self.name.replace("-", "_")


#: generator name -> its Generator entry; each method package registers its own (`register_generator`).
GENERATORS: Registry[Generator] = registry("generators", "generator")


def register_generator(generator: Generator) -> Generator:
    """Add a method's entry to GENERATORS (its package's `__init__` calls this once)."""
    GENERATORS.add(generator.name, generator, generator.description)
    return generator


def load_generators() -> list[Generator]:
    """Every registered generator, by name: each subpackage of generate/ is imported, so that it registers itself."""
    import generate

    for module in pkgutil.iter_modules(generate.__path__):
        if module.ispkg:
            importlib.import_module(f"generate.{module.name}")
    return [GENERATORS.get(name) for name in sorted(GENERATORS.names())]
