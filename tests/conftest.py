"""Shared fixtures: where ../shared/data is, and how to skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`TURNWISE_SHARED_DATA`, defaulting to ../shared/data beside the repository."""
    return Path(os.environ.get("TURNWISE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set TURNWISE_SHARED_DATA)")
    return path
