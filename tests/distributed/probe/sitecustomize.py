"""Test-only probe for launched training ranks: records each rank's training pairs and file writes, can fail a rank.

Put this directory first on PYTHONPATH and set TURNWISE_PROBE_DIR; every process that `accelerate launch` starts
(the ones with a RANK variable) then appends to TURNWISE_PROBE_DIR/rank<R>.jsonl:
  {"kind": "batch", "step": S, "pairs": [hash, ...]}   one line per training micro-batch (hash of the chosen ids)
  {"kind": "write", "path": P}                          one line per file opened for writing (or saved by
                                                        torch.save / safetensors) under TURNWISE_PROBE_WATCH
TURNWISE_PROBE_FAIL_RANK=R makes rank R raise in its first training step (a deterministic rank failure).
Nothing in production code knows about this module.
"""

from __future__ import annotations

import json
import os
import sys

_RANK = os.environ.get("RANK")
_PROBE_DIR = os.environ.get("TURNWISE_PROBE_DIR")


def _record(entry: dict) -> None:
    with open(os.path.join(_PROBE_DIR, f"rank{_RANK}.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not isinstance(args[0], (str, os.PathLike)):
        return
    path, mode = os.fspath(args[0]), args[1]
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
        (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    watched = os.environ.get("TURNWISE_PROBE_WATCH", "")
    if writing and watched and os.path.abspath(path).startswith(watched) and not path.startswith(_PROBE_DIR):
        _record({"kind": "write", "path": os.path.abspath(path)})


def _watched(path: object) -> None:
    if isinstance(path, (str, os.PathLike)):
        _audit("open", (path, "wb", None))


def _recording(save):
    """`save` (torch.save, safetensors' save_file) recording its target path: their writers bypass `open`."""
    def recorded(obj, f, *args, **kwargs):
        _watched(f)
        return save(obj, f, *args, **kwargs)
    return recorded


def _install() -> None:
    import safetensors.torch
    import torch
    import transformers.modeling_utils

    import rm.trainer

    torch.save = _recording(torch.save)
    safetensors.torch.save_file = _recording(safetensors.torch.save_file)
    transformers.modeling_utils.safe_save_file = _recording(transformers.modeling_utils.safe_save_file)

    original = rm.trainer.TurnwiseRewardTrainer.training_step
    fail_rank = os.environ.get("TURNWISE_PROBE_FAIL_RANK")

    def training_step(self, model, inputs, *args, **kwargs):
        if fail_rank == _RANK:
            raise RuntimeError(f"injected failure on rank {_RANK}")
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        half = ids.shape[0] // 2
        pairs = [hash(tuple(ids[i][mask[i].bool()].tolist())) for i in range(half)]
        _record({"kind": "batch", "step": self.state.global_step, "pairs": pairs})
        return original(self, model, inputs, *args, **kwargs)

    rm.trainer.TurnwiseRewardTrainer.training_step = training_step


if _RANK is not None and _PROBE_DIR:
    sys.addaudithook(_audit)
    _install()
