"""RewardModel: load a trained RM (full, PEFT adapter with head, or quantized) and score conversations or turns."""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from chat.conversation import Conversation, PreferencePair
from chat.errors import ConfigError, InputError
from rm.encoding import ConversationEncoder, EncodedConversation
from rm.rewards import (causal_mask_or_none, head_module_names, is_last_token_pooling, length_batches, pad_batch,
                        rewards_at_positions, sequence_rewards, unwrap_model)

logger = logging.getLogger(__name__)

#: Written beside a trained / quantized RM: how it was trained (max_length, base model, truncation stats...).
METADATA_FILE = "turnwise_rm.json"

ConversationLike = Conversation | Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Preference:
    """Outcome of `RewardModel.prefer(a, b)`."""

    winner: str          # "a", "b" or "tie"
    score_a: float
    score_b: float

    @property
    def margin(self) -> float:
        return self.score_a - self.score_b


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_attn_implementation(model_type: str) -> str | None:
    """Gemma-2 soft-caps attention logits, which SDPA/flash kernels skip: use eager attention for it."""
    return "eager" if model_type == "gemma2" else None


def load_sequence_classifier(path: str, *, dtype: torch.dtype | None = None, attn_implementation: str | None = None,
                             quantization_config: Any = None, device: torch.device | None = None,
                             trust_remote_code: bool = False) -> Any:
    """`AutoModelForSequenceClassification` with one label, Gemma-2 eager attention, the right dtype/device."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a model directory or known model: {exc}") from None
    kwargs: dict[str, Any] = {"num_labels": 1, "trust_remote_code": trust_remote_code}
    attn = attn_implementation or default_attn_implementation(config.model_type)
    if attn:
        kwargs["attn_implementation"] = attn
    already_quantized = getattr(config, "quantization_config", None) is not None
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if dtype is not None:
        kwargs["dtype"] = dtype
    if (quantization_config is not None or already_quantized) and device is not None and device.type == "cuda":
        kwargs["device_map"] = {"": device.index or 0}
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    if quantization_config is None and not already_quantized and device is not None:
        model.to(device)
    return model


class RewardModel:
    """A scalar reward model over conversations (docs/methods.md, RM steps 5-6: one score per conversation,
    read at the final token's hidden state; `score_turns` reads it at every assistant turn's end).

    Scoring sorts conversations by token length and batches them under a token budget, in
    `torch.inference_mode()`. Construct with `RewardModel.load(path)` or from a model + tokenizer.
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int | None = None, token_budget: int | None = None,
                 max_batch_size: int | None = None, name: str = ""):
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        if max_length is None:  # never exceed what the position embeddings cover
            max_length = getattr(unwrap_model(model).config, "max_position_embeddings", None)
        self.encoder = ConversationEncoder(tokenizer, max_length)
        self.name = name
        self.metadata: dict[str, Any] = {}   # the METADATA_FILE of a loaded RM
        self.one_pass_turns = is_last_token_pooling(model)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = next(model.parameters()).device
        # Measured on the 2-core CPU box (bench/RESULTS.md): batches beyond ~2k tokens get slower per token
        # on CPU (cache/memory bound); GPUs want large batches.
        on_gpu = self.device.type == "cuda"
        self.token_budget = token_budget or (32768 if on_gpu else 2048)
        self.max_batch_size = max_batch_size or (64 if on_gpu else 8)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
             base_model: str | None = None, max_length: int | None = None, token_budget: int | None = None,
             attn_implementation: str | None = None, dynamic_int8: bool = False,
             trust_remote_code: bool = False, revision: str | None = None) -> "RewardModel":
        """Load a full RM directory, a PEFT adapter directory (base + adapter + head) or a quantized RM.

        `path` may also be a hub id (`org/name`, at `revision`) of a full RM or a LoRA adapter, or
        `embedded` / `minilm` (an untrained head: useful only for tests/benchmarks).
        `trust_remote_code` lets transformers run the model repository's own modelling code.
        dtype defaults to bfloat16 on GPU and float32 on CPU; max_length to the one it was trained with.
        `dynamic_int8` (CPU only, off by default): see `quantize_dynamic_int8`; faster, but scores change.
        """
        from transformers import AutoTokenizer

        from chat.embedded import resolve_model

        resolved = resolve_model(str(path))
        if not Path(resolved).exists() and looks_like_hub_id(resolved):
            resolved = download_hub_model(resolved, revision)
        directory = Path(resolved)
        device = torch.device(device) if device is not None else default_device()
        if dynamic_int8 and device.type != "cpu":
            raise ConfigError(f"dynamic int8 scoring runs on CPU only, not on {device}")
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        metadata = read_metadata(directory) if directory.is_dir() else {}
        attn = attn_implementation or metadata.get("attn_implementation")
        adapter_config = directory / "adapter_config.json"
        if adapter_config.is_file():
            from peft import PeftModel

            base = base_model or _adapter_base(directory, adapter_config, metadata)
            model = load_sequence_classifier(base, dtype=dtype, attn_implementation=attn, device=device,
                                             trust_remote_code=trust_remote_code)
            model = PeftModel.from_pretrained(model, str(directory))
            model.to(device)
            tokenizer_source = str(directory) if (directory / "tokenizer_config.json").is_file() else base
        else:
            if directory.exists() and not (directory / "config.json").is_file():
                raise ConfigError(f"{directory}: no config.json or adapter_config.json: not a reward model directory")
            model = load_sequence_classifier(resolved, dtype=dtype, attn_implementation=attn, device=device,
                                             trust_remote_code=trust_remote_code)
            tokenizer_source = resolved
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=trust_remote_code)
        if model.config.pad_token_id is None:
            from rm.encoding import ensure_pad_token

            ensure_pad_token(tokenizer)
            model.config.pad_token_id = tokenizer.pad_token_id
        if not metadata:
            logger.warning("%s has no %s: if it is not a trained reward model its head is random", resolved, METADATA_FILE)
        if dynamic_int8:
            model = quantize_dynamic_int8(model)
        loaded = cls(model, tokenizer, max_length=max_length or metadata.get("max_length"), token_budget=token_budget,
                     name=str(path))
        loaded.metadata = metadata
        return loaded

    # ------------------------------------------------------------------ scoring
    def encode(self, conversation: ConversationLike, *, with_turn_ends: bool = False) -> EncodedConversation:
        return self.encoder.encode(as_conversation(conversation), with_turn_ends=with_turn_ends)

    def score(self, conversations: Iterable[ConversationLike]) -> list[float]:
        """Reward of each whole conversation (at its final token)."""
        encoded = [self.encode(c).input_ids for c in conversations]
        return self.score_token_ids(encoded)

    def score_token_ids(self, sequences: list[list[int]]) -> list[float]:
        """Rewards of already-encoded sequences, batched by length under the token budget."""
        rewards = [0.0] * len(sequences)
        if not sequences:
            return rewards
        with torch.inference_mode():
            for batch in length_batches([len(s) for s in sequences], self.token_budget, self.max_batch_size):
                input_ids, attention_mask = pad_batch([sequences[i] for i in batch], self.pad_token_id, self.device)
                values = sequence_rewards(self.model, input_ids, attention_mask).tolist()
                for index, value in zip(batch, values):
                    rewards[index] = value
        return rewards

    def score_turns(self, conversation: ConversationLike) -> list[float]:
        """Reward after every assistant turn, from one forward pass when the model allows it."""
        return self.score_turns_batch([conversation])[0]

    def score_turns_batch(self, conversations: Iterable[ConversationLike]) -> list[list[float]]:
        """Per-assistant-turn rewards of several conversations.

        Decoder RMs (causal attention, last-token head): one forward pass per conversation, batched,
        reading the head at each assistant turn's last token; identical to scoring each prefix.
        Encoder RMs (bidirectional, e.g. MiniLM) and conversations that needed truncation or whose
        tokenization is not prefix-stable: every prefix is scored as its own sequence (exact, slower).
        """
        conversations = [as_conversation(c) for c in conversations]
        results: list[list[float]] = [[] for _ in conversations]
        one_pass: list[tuple[int, EncodedConversation]] = []
        prefix_jobs: list[tuple[int, Conversation]] = []
        for index, conversation in enumerate(conversations):
            encoded = self.encode(conversation, with_turn_ends=self.one_pass_turns) if self.one_pass_turns else None
            if encoded is not None and encoded.turn_ends is not None and not encoded.truncated:
                one_pass.append((index, encoded))
            else:
                prefix_jobs.append((index, conversation))
        if one_pass:
            self._score_turns_one_pass(one_pass, results)
        if prefix_jobs:
            prefixes = [(index, conversation.prefix(i + 1)) for index, conversation in prefix_jobs
                        for i in conversation.assistant_indices()]
            rewards = self.score([prefix for _, prefix in prefixes])
            for (index, _), reward in zip(prefixes, rewards):
                results[index].append(reward)
        return results

    def _score_turns_one_pass(self, jobs: list[tuple[int, EncodedConversation]], results: list[list[float]]) -> None:
        lengths = [len(encoded.input_ids) for _, encoded in jobs]
        with torch.inference_mode():
            for batch in length_batches(lengths, self.token_budget, self.max_batch_size):
                chunk = [jobs[i] for i in batch]
                input_ids, attention_mask = pad_batch([e.input_ids for _, e in chunk], self.pad_token_id, self.device)
                width = input_ids.shape[1]
                positions = torch.tensor([row * width + end for row, (_, e) in enumerate(chunk) for end in e.turn_ends],
                                         dtype=torch.long, device=self.device)
                values = rewards_at_positions(self.model, input_ids, causal_mask_or_none(attention_mask),
                                              positions).tolist()
                cursor = 0
                for index, encoded in chunk:
                    count = len(encoded.turn_ends or [])
                    results[index] = values[cursor: cursor + count]
                    cursor += count

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
        """(reward of chosen, reward of rejected) for each pair, all scored in one sorted batch run."""
        rewards = self.score([c for pair in pairs for c in (pair.chosen, pair.rejected)])
        return [(rewards[2 * i], rewards[2 * i + 1]) for i in range(len(pairs))]

    def prefer(self, a: ConversationLike, b: ConversationLike) -> Preference:
        """Which of two conversations the RM prefers (Bradley-Terry: P(a > b) = sigmoid(r_a - r_b))."""
        score_a, score_b = self.score([a, b])
        winner = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
        return Preference(winner, score_a, score_b)


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` (letters, digits, `.`, `-`, `_`): a hub repository rather than a local path."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and not text.startswith((".", "/"))


def download_hub_model(repo_id: str, revision: str | None = None) -> str:
    """Local snapshot of a hub RM (full model or LoRA adapter, told apart by `adapter_config.json` through
    huggingface_hub's API); training checkpoints in the repository are not downloaded."""
    import huggingface_hub

    try:
        is_adapter = huggingface_hub.file_exists(repo_id, "adapter_config.json", revision=revision)
        directory = huggingface_hub.snapshot_download(repo_id, revision=revision,
                                                      ignore_patterns=["checkpoint-*", "last-checkpoint/*"])
    except Exception as exc:  # noqa: BLE001 - network, auth and missing-repo errors are one clear config error
        raise ConfigError(f"{repo_id}: no such directory, and cannot fetch it from the hub: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    found = (Path(directory) / "adapter_config.json").is_file()
    if is_adapter != found:
        raise ConfigError(f"{repo_id}: the hub says adapter_config.json is {'' if is_adapter else 'not '}there, "
                          f"the downloaded snapshot {directory} disagrees")
    logger.info("%s: %s from the hub -> %s", repo_id, "LoRA adapter" if is_adapter else "full model", directory)
    return directory


def quantize_dynamic_int8(model: Any) -> Any:
    """Opt-in fast CPU scoring: every backbone `nn.Linear` gets int8 weights and per-batch int8 activations
    (torch dynamic quantization, VNNI kernels); the reward head stays float32.

    Not exact: on the trained MiniLM RM rewards move by up to ~1 (reward std ~0.8) and pairwise accuracy
    changes; bench/rm_score_throughput.py --dynamic-int8 measures speed and accuracy (bench/NOTES.md).
    """
    if getattr(unwrap_model(model).config, "quantization_config", None) is not None:
        raise ConfigError("dynamic int8 needs a float model; this one is already quantized (bitsandbytes)")
    if hasattr(model, "merge_and_unload"):  # PEFT: fold LoRA into the base weights first
        model = model.merge_and_unload()
    keep_float = set(head_module_names(model))
    linear_names = {name for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and name.split(".")[0] not in keep_float}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks eager-mode quantization deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, linear_names, dtype=torch.qint8)


def as_conversation(value: ConversationLike) -> Conversation:
    """A Conversation from a Conversation or a list of `{role, content}` dicts (validated)."""
    if isinstance(value, Conversation):
        return value
    if isinstance(value, dict) and "messages" in value:
        return Conversation.from_messages(value["messages"], id=value.get("id", ""))
    return Conversation.from_messages(value)


def _adapter_base(directory: Path, adapter_config: Path, metadata: dict[str, Any]) -> str:
    """Base model of a PEFT adapter: a copy saved beside it, else the path recorded in adapter_config.json."""
    saved_base = directory / metadata.get("base_model_dir", "base_model")
    if (saved_base / "config.json").is_file():
        return str(saved_base)
    try:
        base = json.loads(adapter_config.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(adapter_config, None, "base_model_name_or_path", f"cannot read the base model: {exc}") from None
    from chat.embedded import resolve_model

    return resolve_model(base)


__all__ = ["RewardModel", "Preference", "METADATA_FILE", "as_conversation", "quantize_dynamic_int8", "read_metadata"]
