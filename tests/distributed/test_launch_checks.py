"""`turnwise rm train` refuses a multi-process launch whose ranks would each train alone (and race on output_dir)."""

from __future__ import annotations

import pytest

from chat.config import build_config
from chat.errors import ConfigError


def test_a_launch_of_two_processes_that_would_not_train_distributed_is_refused(tmp_path, monkeypatch):
    from rm.config import RMTrainConfig
    from rm.train import check_launch

    config = build_config(RMTrainConfig, {"output_dir": str(tmp_path), "report_to": "none"})
    assert config.world_size == 1          # no process group: what each rank of a GPU launch sees without GPUs
    check_launch(config)                   # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"launched as 2 processes, but each would train alone .*use_cpu: true"):
        check_launch(config)
