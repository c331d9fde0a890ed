"""With an API key in the environment, every LLM stage command sends it to a server that requires it, and no file
it writes (records, seed/iteration logs, error logs, summaries, the response cache, reports) nor its stdout/stderr
at -vv holds the key; also when the server fails every request and echoes the Authorization header back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_responders import RESPONDERS
from reliability_stages import STAGES, assert_all_files_parse, write_config

from chat.backends.scripted import ScriptedBackend
from chat.serve import ChatServer
from fakes.fault_server import FaultPlan, FaultServer

KEY = "sk-reliability-SECRET-4d1f0c9b7e2a5d8c6b3a"
KEY_ENV = "TURNWISE_RELIABILITY_API_KEY"
STAGE_PARAMS = [pytest.param(name, marks=[pytest.mark.slow] if name == "generate mimg" else [],
                             id=name.replace(" ", "-")) for name in STAGES]
#: the failing-server cases fail before MIMG's embedder would matter; its 5 s MiniLM load is spent once above
FAILING_PARAMS = [param for param in STAGE_PARAMS if param.id != "generate-mimg"]


def scripted_server(name: str) -> ChatServer:
    """A real turnwise ChatServer that requires KEY, answering with the stage's deterministic responder."""
    reply = RESPONDERS[name]
    backend = ScriptedBackend(lambda messages, params: reply({"messages": messages, "seed": params.get("seed")}))
    return ChatServer(backend, "stage-model", api_key=KEY)


def run_stage(name: str, folder: Path, base_url: str, **client: object) -> subprocess.CompletedProcess:
    stage = STAGES[name]
    backend = {"kind": "openai", "base_url": base_url, "model": "stage-model", "api_key_env": KEY_ENV,
               "cache": True, "cache_path": str(folder / "cache" / "responses.sqlite"), "timeout": 10.0,
               "retry_base_delay": 0.005, "retry_max_delay": 0.05, **client}
    config = write_config(folder / "backend.yaml", stage.backend_role, backend)
    argv = ["-vv", *stage.argv(stage.make_input(folder), folder / "out" / "out.jsonl", config)]
    env = {**os.environ, KEY_ENV: KEY, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=240)


def files_holding_the_key(folder: Path, result: subprocess.CompletedProcess) -> list[str]:
    found = [str(path) for path in folder.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()]
    found += [stream for stream in ("stdout", "stderr") if KEY in getattr(result, stream)]
    return found


@pytest.mark.parametrize("name", STAGE_PARAMS)
def test_stage_sends_the_key_and_writes_it_nowhere(name, tmp_path):
    with scripted_server(name) as server:
        result = run_stage(name, tmp_path, server.base_url)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "DEBUG" in result.stderr                            # -vv logging was on
    written = [path for path in (tmp_path / "out").iterdir()]
    assert any(path.name == "out.jsonl" or path.name.startswith("out.jsonl.") for path in written)
    assert list((tmp_path / "cache").glob("responses.sqlite*"))   # the response cache was written
    assert files_holding_the_key(tmp_path, result) == []
    assert_all_files_parse(tmp_path / "out")


@pytest.mark.parametrize("name", FAILING_PARAMS)
def test_a_wrong_key_is_refused_without_the_key_in_any_output(name, tmp_path, monkeypatch):
    with scripted_server(name) as server:
        server.api_key = KEY + "-other"                          # the server now expects a different key
        result = run_stage(name, tmp_path, server.base_url, max_retries=1)
    assert result.returncode in (1, 2), result.stdout + result.stderr[-3000:]
    assert "401" in result.stderr or "401" in result.stdout or any(
        "401" in path.read_text() for path in (tmp_path / "out").glob("*.errors.jsonl"))
    assert files_holding_the_key(tmp_path, result) == []


@pytest.mark.parametrize("name", FAILING_PARAMS)
def test_error_bodies_echoing_the_authorization_header_are_scrubbed_everywhere(name, tmp_path):
    plan = FaultPlan(rate_500=0.5, rate_400=0.5, echo_authorization=True)
    with FaultServer(plan, reply=RESPONDERS[name]) as server:
        result = run_stage(name, tmp_path, server.base_url, max_retries=1)
    assert server.received and server.received[0].headers["Authorization"] == f"Bearer {KEY}"
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    error_logs = list((tmp_path / "out").glob("*.errors.jsonl"))
    assert error_logs and all("Bearer ***" in path.read_text() for path in error_logs)   # the echo was there
    assert files_holding_the_key(tmp_path, result) == []
