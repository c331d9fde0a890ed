"""Backend tests: the response cache defaults into a temporary directory, never ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "turnwise-cache"
    monkeypatch.setenv("TURNWISE_CACHE", str(cache))
    return cache
