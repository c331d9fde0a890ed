"""Settings every generator shares: the default backends, and the settings that decide a generator's records
for the safe-resume fingerprint (`chat.runner.fingerprint`)."""

from __future__ import annotations

from typing import Any, Iterable

from chat.runner import config_settings
from chat.runner.fingerprint import RUN_KNOBS
from generate.prompts import PROMPT_VERSION


def default_backends() -> dict[str, Any]:
    """Every role on the embedded local model unless the config names backends."""
    return {"default": {"kind": "local", "model": "embedded"}}


def generator_settings(config: Any, knobs: Iterable[str] = ()) -> dict[str, Any]:
    """A generator config's record-changing fields (all but RUN_KNOBS and `knobs`: fields that only say how far a
    run goes) and the prompt version; the backends' identities are added once they are built."""
    return {**config_settings("generate", config, RUN_KNOBS | set(knobs)), "generate.prompt_version": PROMPT_VERSION}
