"""Helpers for the format tests: fixture paths, JSONL writing, and running the real `turnwise` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "formats"


def turnwise_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m app.cli`."""
    script = Path(sys.executable).parent / "turnwise"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def run_turnwise(*args: str | Path, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*turnwise_command(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


def write_rows(path: Path, rows: Iterable[Any]) -> Path:
    """One JSON value per line (strings are written as they are, for hand-made broken lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def pair_row(answer: str = "Fine, thanks.", *, id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A valid TRL conversational preference row."""
    row: dict[str, Any] = {
        "chosen": [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": answer}],
        "rejected": [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "Go away."}],
        **extra,
    }
    if id is not None:
        row["id"] = id
    return row
