"""Library warnings, notices and progress bars stay out of a stage's output unless -v (app/cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_helpers import REPO_ROOT, config_values, write_config

CHILD = Path(__file__).with_name("noisy_stage_child.py")


def run_stage(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path / "p.yaml", config_values(tmp_path / "run"))
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONWARNINGS", "TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    return subprocess.run([sys.executable, str(CHILD), *flags, str(config)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**environment, "PYTHONPATH": str(REPO_ROOT)})


@pytest.mark.parametrize("flags", [(), ("-v",)], ids=["default", "verbose"])
def test_library_noise_needs_verbose(tmp_path, flags):
    result = run_stage(tmp_path, *flags)
    assert result.returncode == 0, result.stderr
    assert "[augment] done in" in result.stdout and "stage output of our own" in result.stderr
    noise = ("FutureWarning", "torch.cuda.amp.autocast", "LOAD REPORT from: noisy-model", "gemm_4bit_forward",
             "Loading weights")
    if flags:
        assert all(text in result.stderr for text in noise), result.stderr
    else:
        assert not any(text in result.stderr for text in noise), result.stderr
