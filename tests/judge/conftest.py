"""Fixtures for judge/ tests: an in-process `turnwise` runner and small preference-pair files."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def run_cli(capsys):
    """Run `turnwise ...` in-process; returns (exit code, stdout, stderr)."""
    import app.cli

    def run(*argv: str) -> tuple[int, str, str]:
        code = app.cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def pairs_file(tmp_path):
    """Three single-turn preference pairs, one with a reference answer, categories x / y."""
    rows = []
    for i, (good, bad) in enumerate([("4", "five"), ("Paris", "Lyon is the capital"), ("blue", "green-ish")]):
        prompt = {"role": "user", "content": f"question {i}"}
        rows.append({"id": f"p{i}", "chosen": [prompt, {"role": "assistant", "content": good}],
                     "rejected": [prompt, {"role": "assistant", "content": bad}],
                     "meta": {"category": "x" if i < 2 else "y", **({"reference": "4"} if i == 0 else {})}})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
