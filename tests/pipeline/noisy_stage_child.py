"""Child process for the quiet-output test: `turnwise [ARGS] run CONFIG --until augment` whose augment stage
makes the noise real libraries make (a torch deprecation FutureWarning, a transformers weights-loading
notice, a bitsandbytes kernel notice, a transformers tqdm bar) and then writes a line of its own.

Usage: python noisy_stage_child.py [-v] CONFIG
"""

from __future__ import annotations

import logging
import sys

import pipeline.stages
from app.cli import main
from pipeline.stages import StageOutcome

logger = logging.getLogger("pipeline.noisy")


def noisy_augment(ctx):
    import torch
    import transformers

    with torch.cuda.amp.autocast(enabled=False):  # FutureWarning: `torch.cuda.amp.autocast(args...)` is deprecated
        pass
    transformers.utils.logging.get_logger("transformers.modeling_utils").warning("LOAD REPORT from: noisy-model")
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward")
    for _ in transformers.utils.logging.tqdm(range(3), desc="Loading weights"):
        pass
    logger.warning("stage output of our own")
    return StageOutcome()


if __name__ == "__main__":
    pipeline.stages.STAGE_FUNCTIONS["augment"] = noisy_augment
    sys.exit(main([*sys.argv[1:-1], "run", sys.argv[-1], "--until", "augment"]))
