"""`turnwise rm quantize`: merge LoRA, quantize with bitsandbytes (int8 / nf4), save loadable by from_pretrained."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from chat.conversation import PreferencePair
from chat.errors import ConfigError
from rm.evaluate import pair_outcomes
from rm.model import METADATA_FILE, RewardModel, default_device, load_sequence_classifier
from rm.rewards import head_module_names, unwrap_model

logger = logging.getLogger(__name__)


@dataclass
class QuantizeReport:
    output_dir: Path
    bits: int
    memory_bytes_before: int
    memory_bytes_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    eval_pairs: int = 0
    flipped_pairs: int | None = None          # pairs whose preferred side changed (the net change hides these)
    mean_abs_reward_change: float | None = None
    keep_float: tuple[str, ...] = ()

    @property
    def accuracy_change_points(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return 100.0 * (self.accuracy_after - self.accuracy_before)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "bits": self.bits,
                "memory_bytes_before": self.memory_bytes_before, "memory_bytes_after": self.memory_bytes_after,
                "memory_ratio": self.memory_bytes_after / self.memory_bytes_before,
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "accuracy_change_points": self.accuracy_change_points, "eval_pairs": self.eval_pairs,
                "flipped_pairs": self.flipped_pairs, "mean_abs_reward_change": self.mean_abs_reward_change,
                "keep_float": list(self.keep_float)}


def quantization_config(bits: int, head: list[str], device: torch.device, keep_float: Sequence[str] = ()) -> Any:
    """int8 (LLM.int8) or nf4 with double quantization; the reward head stays in full precision, and so do the
    linear layers matching `keep_float` (transformers' skip patterns: a name prefix, a suffix or a regex such as
    `.*attention`)."""
    from transformers import BitsAndBytesConfig

    head = [*head, *keep_float]

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=head)
    if bits == 4:
        compute = torch.bfloat16 if device.type == "cuda" else torch.float32
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=head)
    raise ConfigError(f"--bits must be 8 or 4, got {bits}")


def quantize_reward_model(model_path: str, bits: int, output_dir: str | Path,
                          eval_pairs: Sequence[PreferencePair] | None = None,
                          device: str | torch.device | None = None, keep_float: Sequence[str] = (),
                          trust_remote_code: bool = False, revision: str | None = None) -> QuantizeReport:
    """Merge any LoRA adapter into its base, quantize, save to `output_dir`, and compare accuracy on `eval_pairs`.

    `keep_float`: extra linear layers left unquantized (patterns as in `quantization_config`)."""
    device = torch.device(device) if device is not None else default_device()
    if bits not in (4, 8):
        raise ConfigError(f"--bits must be 8 or 4, got {bits}")
    output_dir = Path(output_dir)
    reference = RewardModel.load(model_path, device=device, trust_remote_code=trust_remote_code, revision=revision)
    merged = reference.model.merge_and_unload() if hasattr(reference.model, "merge_and_unload") else reference.model
    merged = unwrap_model(merged)
    head = head_module_names(merged)
    memory_before = merged.get_memory_footprint()
    reference_scores = reference.score_pairs(eval_pairs) if eval_pairs else None

    metadata = reference.metadata
    with tempfile.TemporaryDirectory(prefix="turnwise-merge-") as staging:
        merged.save_pretrained(staging)
        quantized = load_sequence_classifier(staging, quantization_config=quantization_config(bits, head, device,
                                                                                               keep_float),
                                             device=device, attn_implementation=metadata.get("attn_implementation"),
                                             trust_remote_code=trust_remote_code)
    quantized.config.pad_token_id = merged.config.pad_token_id
    if output_dir.exists():
        shutil.rmtree(output_dir)
    quantized.save_pretrained(str(output_dir))
    reference.tokenizer.save_pretrained(str(output_dir))
    candidate = RewardModel(quantized, reference.tokenizer, max_length=reference.encoder.max_length,
                            name=str(output_dir))
    report = QuantizeReport(output_dir, bits, memory_before, quantized.get_memory_footprint(),
                            eval_pairs=len(eval_pairs or []), keep_float=tuple(keep_float))
    if eval_pairs and reference_scores is not None:
        compare_scores(report, reference_scores, candidate.score_pairs(eval_pairs))
    metadata = {**metadata, "format": "turnwise-rm/1", "max_length": reference.encoder.max_length,
                "peft": False, "quantization": report.to_dict(), "quantized_from": str(model_path)}
    (output_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")
    return report


def compare_scores(report: QuantizeReport, before: list[tuple[float, float]], after: list[tuple[float, float]]) -> None:
    """Fill the report's accuracy before/after, flipped pairs and mean |reward change| from (chosen, rejected) scores."""
    outcomes_before = pair_outcomes([c for c, _ in before], [r for _, r in before])
    outcomes_after = pair_outcomes([c for c, _ in after], [r for _, r in after])
    report.accuracy_before = float(outcomes_before.mean())
    report.accuracy_after = float(outcomes_after.mean())
    report.flipped_pairs = int((outcomes_before != outcomes_after).sum())
    changes = [abs(x - y) for pair_before, pair_after in zip(before, after) for x, y in zip(pair_before, pair_after)]
    report.mean_abs_reward_change = sum(changes) / len(changes)
