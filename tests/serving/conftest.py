"""Fixtures for tests against the real embedded model (converted once per machine, ~60 s the first time)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_engine():
    from chat.backends.local import load_engine

    return load_engine("gemma3-270m")
