"""Helpers for rm/ tests: synthetic preference pairs, the tiny Gemma-2 config, an rm-only CLI entry."""

from __future__ import annotations

import json
import random
from pathlib import Path

from chat.config import build_config, load_yaml
from chat.conversation import PreferencePair

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "configs" / "rm" / "tiny-gemma2.yaml"


def synthetic_pairs(n: int, seed: int = 0, max_turns: int = 3) -> list[PreferencePair]:
    """Multi-turn pairs whose final replies differ in a learnable way (helpful vs rude wording)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        history = []
        for turn in range(rng.randint(1, max_turns)):
            history.append({"role": "user", "content": f"question {turn} about topic {rng.randint(0, 50)} " +
                            "detail " * rng.randint(0, 12)})
            history.append({"role": "assistant", "content": "earlier answer " + "text " * rng.randint(1, 15)})
        prompt = history[:-1]
        pairs.append(PreferencePair.from_messages(
            prompt + [{"role": "assistant", "content": "Sure, here is a careful and helpful answer. " * rng.randint(1, 3)}],
            prompt + [{"role": "assistant", "content": "No. Figure it out yourself, idiot. " * rng.randint(1, 3)}],
            id=f"pair-{i}", meta={"source": "even" if i % 2 == 0 else "odd"}))
    return pairs


def write_pairs(pairs: list[PreferencePair], path: Path) -> Path:
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs), encoding="utf-8")
    return path


def tiny_config(output_dir: Path, **overrides: object):
    from rm.config import RMTrainConfig

    values = load_yaml(TINY_CONFIG)
    values.update(output_dir=str(output_dir), disable_tqdm=True, **overrides)
    return build_config(RMTrainConfig, values)


#: Run `turnwise` with only the rm command registered (independent of other areas' modules).
RM_ONLY_CLI = ("import sys, app.cli as cli; cli.COMMAND_MODULES = ('rm.cli',); "
               "sys.exit(cli.main(sys.argv[1:]))")
