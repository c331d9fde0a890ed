"""configs/accelerate/deepspeed-zero3.yaml through DeepSpeed's own config checker (no ZeRO-3 training run).

No ZeRO-3 run on CPU: accelerate (1.15) enables DeepSpeed only when the process is not told to use the CPU
(AcceleratorState: `ACCELERATE_USE_DEEPSPEED and not cpu`), while CPU ranks need `use_cpu` to form a process group
(tests/distributed/test_rm_distributed.py), and the config asks for bf16 on 8 GPUs. What is checked is what a GPU
run hands DeepSpeed: accelerate's DeepSpeedPlugin built from the YAML, its "auto" values filled by transformers from
the 9B recipe (configs/rm/gemma2-9b-it-full.yaml), validated by `deepspeed.runtime.config.DeepSpeedConfig`.
Skipped where deepspeed is not installed (it is not a turnwise dependency).
"""

from __future__ import annotations

import pytest
import yaml
from launch_helpers import REPO_ROOT

pytestmark = pytest.mark.slow

ZERO3 = REPO_ROOT / "configs" / "accelerate" / "deepspeed-zero3.yaml"
FULL_RECIPE = REPO_ROOT / "configs" / "rm" / "gemma2-9b-it-full.yaml"


def test_zero3_config_passes_deepspeeds_checker_with_the_paper_batch(tmp_path):
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install deepspeed; CPU torch is fine)")
    from accelerate.utils import DeepSpeedPlugin
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    from chat.config import build_config, load_yaml
    from rm.config import RMTrainConfig

    values = yaml.safe_load(ZERO3.read_text())
    options = values["deepspeed_config"]
    plugin = DeepSpeedPlugin(zero_stage=options["zero_stage"],
                             offload_optimizer_device=options["offload_optimizer_device"],
                             offload_param_device=options["offload_param_device"],
                             zero3_init_flag=options["zero3_init_flag"],
                             zero3_save_16bit_model=options["zero3_save_16bit_model"])
    plugin.set_mixed_precision(values["mixed_precision"])
    recipe = build_config(RMTrainConfig, {**load_yaml(FULL_RECIPE), "output_dir": str(tmp_path), "use_cpu": True,
                                          "bf16": False})
    filled = HfTrainerDeepSpeedConfig(dict(plugin.deepspeed_config))
    filled.trainer_config_process(recipe)
    checked = DeepSpeedConfig(filled.config)      # raises on an invalid or inconsistent config

    assert checked.zero_optimization_stage == 3
    assert checked.zero_config.gather_16bit_weights_on_model_save      # the saved RM loads with from_pretrained
    assert checked.bfloat16_config.enabled
    # one process here; on the config's 8 GPUs the same micro-batch and accumulation give the paper's batch of 64
    assert checked.train_micro_batch_size_per_gpu * checked.gradient_accumulation_steps * values["num_processes"] == 64
