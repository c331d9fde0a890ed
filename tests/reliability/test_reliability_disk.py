"""Outputs that cannot be written: a read-only output folder and a disk that fills up mid-run (RLIMIT_FSIZE in
the child, so writes fail with EFBIG): one-line error naming the file, exit 2, no traceback; the records written
before the failure are complete lines, and a rerun with space resumes and finishes without duplicates."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from reliability_responders import RESPONDERS
from reliability_stages import STAGES, assert_all_files_parse, ids_of, jsonl_lines, outputs_of, pairs_input, write_config

from fakes.fault_server import FaultServer


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` unwritable: mode 0555, or (as root, who ignores modes) the immutable attribute."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a usable chattr: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def turnwise(argv: list[str], *, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """`turnwise ARGV` as a child; with `file_size_limit`, no file it writes may grow past that many bytes."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=240, preexec_fn=limit_file_size if file_size_limit else None)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


# -- read-only output folder -------------------------------------------------------------------------------------

def _mix_argv(tmp: Path, out: Path) -> list[str]:
    pairs = pairs_input(tmp)
    return ["augment", "mix", "--original", pairs, "--augmented", pairs, "-o", out]


def _agree_argv(tmp: Path, out: Path) -> list[str]:
    verdicts = [{"id": f"p{i}", "judge": "j", "winner": "A"} for i in range(3)]
    path = tmp / "verdicts.jsonl"
    path.write_text("".join(json.dumps(v) + "\n" for v in verdicts), encoding="utf-8")
    return ["judge", "agree", "--a", path, "--b", path, "-o", out]


OFFLINE_COMMANDS = {
    "data convert": lambda tmp, out: ["data", "convert", pairs_input(tmp), "-o", out],
    "augment mix": _mix_argv,
    "judge agree": _agree_argv,
}
LLM_STAGES = [name for name in STAGES if name != "generate mimg"]   # MIMG loads MiniLM first: covered by the runner


@pytest.mark.parametrize("name", list(OFFLINE_COMMANDS))
def test_offline_command_into_a_read_only_folder_is_one_line_naming_the_path(name, tmp_path):
    locked = tmp_path / "locked"
    out = locked / "out.jsonl"
    with read_only(locked):
        result = turnwise(OFFLINE_COMMANDS[name](tmp_path, out))
    assert_one_line_error(result, str(locked))
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("name", LLM_STAGES)
def test_llm_stage_into_a_read_only_folder_is_one_line_naming_the_path(name, tmp_path):
    stage = STAGES[name]
    locked = tmp_path / "locked"
    with FaultServer(reply=RESPONDERS[name]) as server, read_only(locked):
        config = write_config(tmp_path / "backend.yaml", stage.backend_role, server.backend_config())
        result = turnwise(stage.argv(stage.make_input(tmp_path), locked / "out.jsonl", config))
    assert_one_line_error(result, "cannot write", str(locked))
    assert list(locked.iterdir()) == []
    assert server.request_count == 0        # it stopped before spending any LLM call


# -- disk full mid-run ------------------------------------------------------------------------------------------

DISK_FULL_STAGES = ["judge grade", "augment music", "generate review-instruct", "generate coevol", "generate sedi"]


@pytest.mark.slow
@pytest.mark.parametrize("name", DISK_FULL_STAGES)
def test_disk_full_mid_run_keeps_complete_records_and_a_rerun_finishes(name, tmp_path):
    stage = STAGES[name]
    input_path = stage.make_input(tmp_path)
    with FaultServer(reply=RESPONDERS[name]) as server:
        config = write_config(tmp_path / "backend.yaml", stage.backend_role, server.backend_config())
        reference = tmp_path / "reference" / "out.jsonl"
        assert turnwise(stage.argv(input_path, reference, config)).returncode == 0
        expected = outputs_of(reference.parent, reference)
        largest = max((p for p in reference.parent.glob("out.jsonl*") if p.suffix == ".jsonl"),
                      key=lambda p: p.stat().st_size)
        first_record = len(largest.read_bytes().split(b"\n", 1)[0]) + 1
        limit = max(largest.stat().st_size // 2, first_record + 1)   # room for some records, not for all

        output = tmp_path / "full" / "out.jsonl"
        full = turnwise(stage.argv(input_path, output, config), file_size_limit=limit)
        assert_one_line_error(full, "cannot write the output", str(output.parent), "File too large")
        assert_all_files_parse(output.parent)   # what was written before the failure is whole lines only
        before = {path.name: ids_of(path) for path in output.parent.glob("out.jsonl*")
                  if path.suffix == ".jsonl" and not path.name.endswith(".errors.jsonl")}
        assert any(before.values()), "the disk filled before any record was written"

        resumed = turnwise(stage.argv(input_path, output, config))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert outputs_of(output.parent, output) == expected
    for name_, ids in before.items():
        after = ids_of(output.parent / name_)
        assert after[:len(ids)] == ids and len(after) == len(set(after)), name_   # kept, appended to, no repeats
    assert all(jsonl_lines(path) for path in output.parent.glob("*.jsonl") if not path.name.endswith(".errors.jsonl"))
