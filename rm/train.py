"""`turnwise rm train`: the reward-model training recipe (TRL RewardTrainer, Bradley-Terry, optional LoRA/QLoRA)."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from chat.conversation import PreferencePair
from chat.errors import ConfigError
from rm.config import RMTrainConfig
from rm.data import TokenizedPairs, load_preference_pairs, split_pairs, tokenize_pairs
from rm.encoding import ConversationEncoder, ensure_chat_template, ensure_pad_token
from rm.model import METADATA_FILE, default_attn_implementation
from rm.model_card import write_model_card
from rm.rewards import head_module_names, is_last_token_pooling
from rm.trainer import PreferenceCollator, TurnwiseRewardTrainer

logger = logging.getLogger(__name__)

#: Where a LoRA run on a randomly initialised base model (`model_config`) saves that base.
BASE_MODEL_DIR = "base_model"


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    train_pairs: int
    eval_pairs: int
    train_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    truncation: dict[str, Any] = field(default_factory=dict)
    train_tokens: int = 0
    wall_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.wall_seconds if self.wall_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "global_step": self.global_step, "train_pairs": self.train_pairs,
                "eval_pairs": self.eval_pairs, "train_metrics": self.train_metrics, "eval_metrics": self.eval_metrics,
                "truncation": self.truncation, "train_tokens": self.train_tokens, "wall_seconds": self.wall_seconds,
                "tokens_per_second": self.tokens_per_second}


def train_reward_model(config: RMTrainConfig, train_pairs: Sequence[PreferencePair] | None = None,
                       eval_pairs: Sequence[PreferencePair] | None = None) -> TrainResult:
    """Train a scalar RM on preference pairs (docs/methods.md, RM steps 1-4).

    The paper: Gemma-2-9B-it with a scalar head on the final token, Bradley-Terry loss
    -log sigmoid(r_chosen - r_rejected), max length 2048, batch 64, lr 2e-6, 2500 steps.
    Pairs come from `config.train_data` unless given.
    """
    started = time.perf_counter()
    check_launch(config)
    # 1. Data: every pair is kept; too-long conversations lose earlier turns from the left.
    if train_pairs is None:
        if not config.train_data:
            raise ConfigError("train_data is not set (a file or hub dataset id of preference pairs)")
        train_pairs = load_preference_pairs(config.train_data, config.train_format, config.train_limit,
                                            skip_invalid=config.skip_invalid_rows)
    elif config.train_limit:
        train_pairs = list(train_pairs)[: config.train_limit]
    if eval_pairs is None and config.eval_data:
        eval_pairs = load_preference_pairs(config.eval_data, config.eval_format, skip_invalid=config.skip_invalid_rows)
    if eval_pairs is None:
        train_pairs, eval_pairs = split_pairs(train_pairs, config.eval_fraction, config.seed)

    # 2. Tokenizer and model (head = one scalar; Gemma-2 with eager attention; optional 4/8-bit base).
    tokenizer = load_tokenizer(config)
    model = build_model(config, tokenizer)
    encoder = ConversationEncoder(tokenizer, config.max_length)
    train_tokens = tokenize_pairs(train_pairs, encoder, config.margin_key, config.dataset_num_proc)
    eval_tokens = tokenize_pairs(eval_pairs, encoder, config.margin_key, config.dataset_num_proc) if eval_pairs else None
    if config.padding_free and not is_last_token_pooling(model):
        raise ConfigError("padding_free needs a decoder RM (last-token head); this model pools bidirectionally")

    # 3. TRL's RewardTrainer with our collator and loss (rewards at explicit last-token positions).
    # chat_template_path and model_init_kwargs were applied above; TRL would apply them again to the
    # already-tokenized run (cloning a template resizes the embeddings), so its trainer sees them done.
    config.chat_template_path = None
    config.model_init_kwargs = None
    trainer = TurnwiseRewardTrainer(
        model=model,
        args=config,
        data_collator=PreferenceCollator(tokenizer.pad_token_id, config.padding_free, config.pad_to_multiple_of),
        train_dataset=train_tokens.to_dataset(),
        eval_dataset=eval_tokens.to_dataset() if eval_tokens else None,
        processing_class=tokenizer,
        peft_config=lora_config(config, model),
    )
    output_dir = Path(config.output_dir)
    heads = head_module_names(model)
    card: dict[str, Any] = {"result": None}
    trainer.model_card_writer = lambda: write_model_card(output_dir, config, card["result"])
    if config.push_to_hub and trainer.is_world_process_zero():
        # Checkpoint pushes upload output_dir: the hub copy must be loadable (template, max_length, head) early.
        tokenizer.save_pretrained(str(output_dir))
        write_metadata(output_dir, config, None, tokenizer, heads)
    output = trainer.train(resume_from_checkpoint=resume_argument(config.resume_from_checkpoint, config.output_dir))
    eval_metrics = trainer.evaluate() if eval_tokens else {}

    # 4. Save: metadata, tokenizer and model card first, then the full model or LoRA adapter *with the trained
    # head* (modules_to_save); with push_to_hub, `save_model` pushes output_dir, so everything goes up together.
    result = TrainResult(output_dir, trainer.state.global_step, len(train_tokens), len(eval_tokens or []),
                         dict(output.metrics), eval_metrics, _truncation_report(train_tokens, eval_tokens),
                         trainer.total_train_tokens, time.perf_counter() - started)
    card["result"] = result.to_dict()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        write_metadata(output_dir, config, result, tokenizer, heads)
        write_model_card(output_dir, config, card["result"])
    trainer.save_model(str(output_dir))  # gathers sharded weights (FSDP/ZeRO-3); writes (and pushes) on main
    return result


def check_launch(config: RMTrainConfig) -> None:
    """Refuse a multi-process launch that would not train distributed: on a machine without GPUs, accelerate's
    GPU launcher starts N processes that each train alone (world size 1) and all write output_dir."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and config.world_size == 1:
        raise ConfigError(f"launched as {launched} processes, but each would train alone (no GPU found): set "
                          "use_cpu: true (--use_cpu true) for CPU data-parallel training over gloo")


def load_tokenizer(config: RMTrainConfig) -> Any:
    from transformers import AutoTokenizer

    from chat.embedded import resolve_model

    source = resolve_model(config.tokenizer_name_or_path or config.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer {source!r}: {exc}") from None
    # RewardConfig's chat_template_path / eos_token / pad_token act here, before any pair is tokenized.
    if config.chat_template_path is not None:
        tokenizer.chat_template = read_chat_template(config.chat_template_path, tokenizer, config.trust_remote_code)
    for name in ("eos_token", "pad_token"):
        value = getattr(config, name)
        if value is not None:
            if value not in tokenizer.get_vocab():
                raise ConfigError(f"{name}: {value!r} is not in the vocabulary of tokenizer {source!r}")
            setattr(tokenizer, name, value)
    ensure_chat_template(tokenizer)
    ensure_pad_token(tokenizer)
    return tokenizer


def read_chat_template(path: str, tokenizer: Any, trust_remote_code: bool = False) -> str:
    """`chat_template_path`: a Jinja file (.jinja/.j2), or a tokenizer directory / hub id whose template is used.

    Unlike TRL's `clone_chat_template`, no tokens are added to the vocabulary: a cloned template whose
    added tokens `tokenizer` lacks is refused (they would be split into pieces).
    """
    from transformers import AutoTokenizer

    if Path(path).is_file():
        if not path.endswith((".jinja", ".j2")):
            raise ConfigError(f"chat_template_path: {path}: expected a .jinja or .j2 file, or a tokenizer directory")
        return Path(path).read_text(encoding="utf-8")
    try:
        donor = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"chat_template_path: cannot load a tokenizer from {path!r}: {exc}") from None
    if not donor.chat_template:
        raise ConfigError(f"chat_template_path: tokenizer {path!r} has no chat template")
    vocabulary = tokenizer.get_vocab()
    missing = sorted(t for t in donor.get_added_vocab() if t in donor.chat_template and t not in vocabulary)
    if missing:
        raise ConfigError(f"chat_template_path: {path!r} uses tokens missing from the training tokenizer: "
                          f"{', '.join(missing[:5])}")
    return donor.chat_template


def build_model(config: RMTrainConfig, tokenizer: Any) -> Any:
    """One-label sequence classifier: from a checkpoint, or from `model_config` with random weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BitsAndBytesConfig

    from chat.embedded import resolve_model

    torch.manual_seed(config.seed)  # the fresh head's initialisation is part of the run's seed
    quantization = None
    dtype = config.torch_dtype()
    if config.load_in_4bit or config.load_in_8bit:
        dtype = config.torch_dtype(config.bnb_4bit_compute_dtype)
        quantization = BitsAndBytesConfig(
            load_in_4bit=config.load_in_4bit, load_in_8bit=config.load_in_8bit,
            bnb_4bit_quant_type=config.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=config.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=["score", "classifier"],  # the head stays in full precision and trainable
        )
    init_kwargs = model_init_kwargs(config)
    if config.model_config is not None:
        if init_kwargs:
            raise ConfigError("model_init_kwargs applies to a model loaded from model_name_or_path, not to one "
                              "built from model_config")
        values = dict(config.model_config)
        model_type = values.pop("model_type", None)
        if not model_type:
            raise ConfigError("model_config needs a model_type (e.g. gemma2)")
        values.setdefault("vocab_size", len(tokenizer))
        values.update(num_labels=1, pad_token_id=tokenizer.pad_token_id)
        model_config = AutoConfig.for_model(model_type, **values)
        attn = config.attn_implementation or default_attn_implementation(model_type)
        if attn:
            model_config._attn_implementation = attn
        model = AutoModelForSequenceClassification.from_config(model_config, dtype=dtype)
        if not config.use_peft:
            return model
        # The adapter needs its base on disk to be reloadable; a quantized base is loaded from there.
        base_dir = Path(config.output_dir) / BASE_MODEL_DIR
        with config.main_process_first(desc="saving the random base model"):
            if config.process_index == 0:
                model.save_pretrained(str(base_dir))
        if quantization is None:
            return model
        source = str(base_dir)
    else:
        source = resolve_model(config.model_name_or_path)
    try:
        base_config = AutoConfig.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model {source!r}: {exc}") from None
    kwargs: dict[str, Any] = {"num_labels": 1, "dtype": dtype, "trust_remote_code": config.trust_remote_code}
    attn = config.attn_implementation or default_attn_implementation(base_config.model_type)
    if attn:
        kwargs["attn_implementation"] = attn
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": config.local_process_index}
    if quantization is not None and "quantization_config" in init_kwargs:
        raise ConfigError("model_init_kwargs.quantization_config conflicts with load_in_4bit / load_in_8bit")
    kwargs.update(init_kwargs)  # the user's from_pretrained arguments win over turnwise's defaults
    model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    if config.eos_token is not None:
        model.config.eos_token_id = tokenizer.eos_token_id
    return model


def model_init_kwargs(config: RMTrainConfig) -> dict[str, Any]:
    """RewardConfig's `model_init_kwargs` (a mapping, or its JSON text) for `from_pretrained`."""
    value = config.model_init_kwargs
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model_init_kwargs: not a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"model_init_kwargs: expected a mapping, got {type(value).__name__}")
    if "num_labels" in value and value["num_labels"] != 1:
        raise ConfigError("model_init_kwargs.num_labels: a reward model has exactly one output")
    value = dict(value)
    if isinstance(value.get("dtype", value.get("torch_dtype")), str):
        key = "dtype" if "dtype" in value else "torch_dtype"
        value["dtype"] = config.torch_dtype(value.pop(key)) if value[key] != "auto" else value.pop(key)
    return value


def lora_config(config: RMTrainConfig, model: Any) -> Any:
    """LoRA on every backbone linear layer; the freshly initialised head is fully trained and saved."""
    if not config.use_peft:
        return None
    from peft import LoraConfig, TaskType

    heads = head_module_names(model)
    targets = config.lora_target_modules or backbone_linear_names(model, heads)
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets, modules_to_save=heads)


def backbone_linear_names(model: Any, heads: list[str]) -> list[str]:
    """Distinct leaf names of the linear layers outside the head (q_proj, ..., or query, key, ...)."""
    names = set()
    for name, module in model.named_modules():
        if name.split(".")[0] in heads:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.split(".")[-1])
    return sorted(names)


def resume_argument(value: str | None, output_dir: str | Path) -> str | None:
    """`resume_from_checkpoint`: a checkpoint path, or true/last for the newest *complete* checkpoint.

    A run killed while writing a checkpoint leaves a directory without `trainer_state.json`;
    such a checkpoint is skipped (with a warning) and the previous one is used.
    """
    if value is None or str(value).lower() in ("", "false", "no", "none"):
        return None
    if str(value).lower() not in ("true", "yes", "last", "latest"):
        if not (Path(value) / "trainer_state.json").is_file():
            raise ConfigError(f"{value}: not a complete checkpoint (no trainer_state.json)")
        return str(value)
    checkpoints = sorted((p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                         key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for checkpoint in checkpoints:
        if (checkpoint / "trainer_state.json").is_file():
            return str(checkpoint)
        logger.warning("%s is incomplete (killed while saving?): skipped", checkpoint)
    logger.warning("no complete checkpoint in %s: training from the start", output_dir)
    return None


def write_metadata(output_dir: Path, config: RMTrainConfig, result: TrainResult | None, tokenizer: Any,
                   heads: Sequence[str]) -> None:
    """METADATA_FILE: what loading needs (max_length, chat template, head modules, base) and how it was trained;
    `result` is null while training is still running (written early only for hub pushes)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": "turnwise-rm/1",
        "max_length": config.max_length,
        "chat_template": getattr(tokenizer, "chat_template", None),
        "head": list(heads),
        "attn_implementation": config.attn_implementation,
        "peft": config.use_peft,
        "base_model": config.model_name_or_path if config.model_config is None else BASE_MODEL_DIR,
        "config": config.summary(),
        "result": result.to_dict() if result is not None else None,
    }
    (output_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")


def _truncation_report(train: TokenizedPairs, evaluation: TokenizedPairs | None) -> dict[str, Any]:
    report = {"train": train.truncation.to_dict()}
    if evaluation is not None:
        report["eval"] = evaluation.truncation.to_dict()
    return report
