"""`RMTrainConfig`: TRL's RewardConfig plus model, data, LoRA/QLoRA and batching fields for `turnwise rm train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import RewardConfig


@dataclass
class RMTrainConfig(RewardConfig):
    r"""Configuration of `turnwise rm train` (every `RewardConfig` / `TrainingArguments` field is accepted too).

    Parameters that control the model:
        model_name_or_path: checkpoint loaded with `AutoModelForSequenceClassification` (or a `turnwise list models` name).
        model_config: build the model from this config with random weights instead (tests, architecture benchmarks).
        tokenizer_name_or_path, attn_implementation, model_dtype.
    Parameters that control the data:
        train_data / eval_data (+ `*_format`), eval_fraction, train_limit, margin_key.
    Parameters that control LoRA / QLoRA:
        use_peft, lora_r, lora_alpha, lora_dropout, lora_target_modules, load_in_4bit, load_in_8bit, bnb_4bit_*.
    Parameters that control batching:
        padding_free.

    Overridden defaults (vs TRL's RewardConfig), chosen against common complaints:
        - `max_length`: 2048 (the paper's) instead of 1024, and long pairs are left-truncated by whole
          turns instead of being dropped.
        - `train_sampling_strategy`: "group_by_length" instead of "random" (less padding).
        - `gradient_checkpointing` / `activation_checkpointing`: off instead of on (the 9B configs turn it on).
        - `bf16`: on only where a GPU supports it, instead of always.
        - `output_dir`: "runs/rm".
    """

    # Parameters whose default values are overridden from RewardConfig / TrainingArguments
    output_dir: str | None = field(default="runs/rm", metadata={"help": "Where checkpoints and the trained RM go."})
    max_length: int | None = field(
        default=2048,
        metadata={"help": "Maximum tokens per conversation. Longer ones lose whole earlier turns from the left "
                          "(final turns kept); no pair is dropped. None: no limit."},
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Recompute activations in backward to save memory (slower); transformers' newer name is "
                          "`activation_checkpointing`. Default: off."},
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision. Default: on if a GPU with bf16 support is present."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Sampler: 'group_by_length' (default, less padding), 'random', 'sequential'.",
                  "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]},
    )

    # Parameters that control the model
    model_name_or_path: str = field(
        default="gemma3-270m",
        metadata={"help": "Model checkpoint (path or hub id; a registered name from `turnwise list models`, e.g. `gemma3-270m` or `minilm`)."},
    )
    model_config: dict | None = field(
        default=None,
        metadata={"help": "Build the model from this config with random weights, e.g. {model_type: gemma2, "
                          "hidden_size: 64, ...}; the tokenizer comes from `tokenizer_name_or_path`."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer to use (default: the model's)."})
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel: eager, sdpa, flash_attention_2. Default: eager for Gemma-2 (its "
                          "logit soft-capping is skipped by SDPA/flash), the model's default otherwise."},
    )
    model_dtype: str = field(
        default="float32",
        metadata={"help": "Dtype of the loaded weights (float32, bfloat16, float16); QLoRA uses bfloat16."},
    )

    # Parameters that control the data
    train_data: str | None = field(
        default=None, metadata={"help": "Training pairs: a file (JSONL/JSON/Parquet, .gz ok) or a hub dataset id."})
    train_format: str | None = field(
        default=None, metadata={"help": "Reader for train_data (auto-detected from the first row when unset)."})
    eval_data: str | None = field(default=None, metadata={"help": "Evaluation pairs (same kinds as train_data)."})
    eval_format: str | None = field(default=None, metadata={"help": "Reader for eval_data."})
    eval_fraction: float = field(
        default=0.0, metadata={"help": "Hold out this fraction of train_data for evaluation when eval_data is unset."})
    train_limit: int | None = field(default=None, metadata={"help": "Use only the first N training pairs."})
    skip_invalid_rows: bool = field(
        default=False,
        metadata={"help": "Leave out invalid rows (counted and reported) instead of stopping at the first one."},
    )
    margin_key: str | None = field(
        default=None,
        metadata={"help": "Key in each pair's meta holding a margin m: loss -log sigmoid(r_c - r_r - m)."},
    )

    # Parameters that control LoRA / QLoRA
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters; the reward head is trained and saved."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Module names to adapt (default: every linear layer of the backbone, not the head)."},
    )
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: load the base model in 4 bit (bitsandbytes)."})
    load_in_8bit: bool = field(default=False, metadata={"help": "Load the base model in 8 bit (bitsandbytes)."})
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "4-bit type: nf4 or fp4.", "choices": ["nf4", "fp4"]})
    bnb_4bit_use_double_quant: bool = field(default=True, metadata={"help": "Quantize the quantization constants too."})
    bnb_4bit_compute_dtype: str = field(default="bfloat16", metadata={"help": "Compute dtype of 4-bit layers."})

    # Parameters that control batching
    padding_free: bool = field(
        default=False,
        metadata={"help": "Pack the chosen and rejected sequences of a batch into one row without padding "
                          "(position ids restart per sequence). Fastest with flash_attention_2; decoder RMs only."},
    )

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()) and not self.fp16
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are mutually exclusive")
        if (self.load_in_4bit or self.load_in_8bit) and not self.use_peft:
            raise ValueError("a quantized base model can only be trained with LoRA: set use_peft: true")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        super().__post_init__()

    def torch_dtype(self, name: str | None = None) -> torch.dtype:
        value = name or self.model_dtype
        dtype = getattr(torch, value, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {value!r}")
        return dtype

    def summary(self) -> dict[str, Any]:
        """The fields a reader of the run needs (written into the RM's metadata)."""
        keys = ("model_name_or_path", "model_config", "train_data", "eval_data", "max_length", "learning_rate",
                "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs",
                "use_peft", "lora_r", "lora_alpha", "load_in_4bit", "load_in_8bit", "padding_free",
                "center_rewards_coefficient", "margin_key", "skip_invalid_rows", "seed")
        return {key: getattr(self, key) for key in keys}
