"""The pipeline YAML (`configs/pipeline/*.yaml`): run directory, named backends, one section per stage."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.config import load_yaml
from chat.errors import ConfigError
from chat.runner.fingerprint import settings_hash

#: The stages of `turnwise run`, in order (DESIGN.md "Main job"). rm_train trains two RMs (baseline on D, MUSIC
#: RM on D_aug), rm_eval and bon compare them (docs/methods.md, "The MUSIC experiment end to end").
STAGES = ("augment", "mix", "rm_train", "rm_eval", "bon", "judge", "generate", "report")
#: Stages whose section may be left out: rm_eval and report then use their defaults; bon, judge and generate do
#: nothing (an experiment that only compares the two RMs leaves out judge and generate).
OPTIONAL_SECTIONS = ("rm_eval", "bon", "judge", "generate", "report")
#: Output layout version of stages whose outputs changed shape; part of their fingerprint, so a run directory
#: written by an older turnwise shows these stages as `changed` (rerun with --from) instead of reading files
#: that are not there. Version 2: two RMs (baseline and MUSIC), eval sets split by kind.
LAYOUT_VERSIONS = {"mix": 2, "rm_train": 2, "rm_eval": 2}
#: Top-level keys besides the stage sections.
TOP_LEVEL = ("run_dir", "label", "backends")
#: Name of the response cache every named backend shares inside the run directory.
CACHE_FILE = "responses.sqlite"


@dataclass
class PipelineConfig:
    """A parsed pipeline config.

    source: the YAML file. run_dir: where every stage writes (relative paths: from the working directory).
    label: one line the report puts first (say there which numbers come from tiny models).
    backends: named backend specs; a stage's `backends:` entry that is a string naming one of them is replaced
        by that spec, so all stages can share one simulator definition.
    sections: stage name -> that stage's raw mapping (validated by the stage itself).
    """

    source: Path
    run_dir: Path
    label: str = ""
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, run_dir: str | Path | None = None) -> "PipelineConfig":
        source = Path(path)
        data = load_yaml(source)
        unknown = sorted(set(data) - set(TOP_LEVEL) - set(STAGES))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (stages: {', '.join(STAGES)}; "
                              f"other keys: {', '.join(TOP_LEVEL)})")
        missing = [stage for stage in STAGES if stage not in data and stage not in OPTIONAL_SECTIONS]
        if missing:
            raise ConfigError(f"{source}: missing stage section(s) {', '.join(missing)}")
        sections = {}
        for stage in STAGES:
            section = data.get(stage) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: {stage}: expected a mapping, got {type(section).__name__}")
            sections[stage] = section
        backends = data.get("backends") or {}
        if not isinstance(backends, dict) or not all(isinstance(spec, dict) for spec in backends.values()):
            raise ConfigError(f"{source}: backends: expected a mapping of name -> backend spec mapping")
        chosen_dir = run_dir if run_dir is not None else data.get("run_dir")
        if not chosen_dir or not isinstance(chosen_dir, (str, Path)):
            raise ConfigError(f"{source}: run_dir: missing (set it in the config or pass --run-dir)")
        label = data.get("label") or ""
        if not isinstance(label, str):
            raise ConfigError(f"{source}: label: expected a string")
        return cls(source, Path(chosen_dir), label.strip(), dict(backends), sections)

    def named_backend(self, name: str) -> dict[str, Any]:
        """A named backend with the run's response cache filled in (unless the spec chose its own)."""
        spec = dict(self.backends[name])
        spec.setdefault("cache_path", str(self.run_dir / CACHE_FILE))
        return spec

    def resolve_backends(self, section: Any, where: str) -> Any:
        """A stage's `backends:` mapping with named references replaced by their specs."""
        if section is None:
            return None
        if not isinstance(section, dict):
            raise ConfigError(f"{self.source}: {where}: expected a mapping of role -> backend")
        resolved = {}
        for role, spec in section.items():
            if isinstance(spec, str) and spec in self.backends:
                resolved[role] = self.named_backend(spec)
            elif isinstance(spec, str) and spec not in ("local", "openai", "scripted"):
                raise ConfigError(f"{self.source}: {where}.{role}: {spec!r} is not a backend named under "
                                  f"`backends:` (named: {', '.join(self.backends) or 'none'})")
            else:
                resolved[role] = spec
        return resolved

    def stage_options(self, stage: str, key: str = "config") -> dict[str, Any]:
        """`<stage>.<key>`: the stage's own dataclass options, with `backends` resolved."""
        options = self.sections[stage].get(key) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{self.source}: {stage}.{key}: expected a mapping")
        options = copy.deepcopy(options)
        if "backends" in options:
            options["backends"] = self.resolve_backends(options["backends"], f"{stage}.{key}.backends")
        return options

    def fingerprint(self, stage: str) -> str:
        """A hash of what decides a stage's output: its section, the named backends it may use and its output
        layout version."""
        payload: dict[str, Any] = {"section": self.sections[stage], "backends": self.backends}
        if stage in LAYOUT_VERSIONS:
            payload["layout"] = LAYOUT_VERSIONS[stage]
        return settings_hash(payload)
