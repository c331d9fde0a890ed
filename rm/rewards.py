"""Reward read-out: the scalar head applied to hidden states at chosen token positions (one forward pass)."""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_layers import GenericForSequenceClassification


def unwrap_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (LoRA layers stay injected and active)."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def is_last_token_pooling(model: Any) -> bool:
    """True for decoder RMs that score the hidden state of a token (transformers' generic
    `*ForSequenceClassification`: Gemma, Llama, Qwen, Mistral...). With a causal mask, the hidden
    state at position t depends only on tokens <= t, so rewards of every prefix can be read from
    one forward pass. Encoders (BERT, MiniLM) pool bidirectionally and cannot."""
    return isinstance(unwrap_model(model), GenericForSequenceClassification)


def head_module_names(model: Any) -> list[str]:
    """Names of the freshly initialised scalar head (to train and save with LoRA)."""
    inner = unwrap_model(model)
    names = [name for name in ("score", "classifier") if isinstance(getattr(inner, name, None), torch.nn.Module)]
    if not names:
        raise ValueError(f"cannot find the reward head of {type(inner).__name__} (expected `score` or `classifier`)")
    return names


def rewards_at_positions(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                         positions: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Rewards read at flat token positions of a batch (docs/methods.md, RM step 4: a scalar head on hidden states).

    input_ids: [B, T]; positions: [N] indices into the flattened [B*T] tokens; returns [N] float32.
    Only for last-token-pooling models (`is_last_token_pooling`).
    """
    inner = unwrap_model(model)
    backbone = getattr(inner, inner.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False).last_hidden_state          # [B, T, H]
    picked = hidden.reshape(-1, hidden.shape[-1])[positions]      # [N, H]
    head_dtype = _active_dtype(inner.score)                       # QLoRA trains a bf16 head over fp32 states
    return inner.score(picked.to(head_dtype)).squeeze(-1).float() # [N]


def _active_dtype(head: torch.nn.Module) -> torch.dtype:
    """Dtype of the head that runs: PEFT's modules_to_save wrapper holds a frozen original and a trained copy."""
    copies = getattr(head, "modules_to_save", None)
    active = getattr(head, "active_adapters", None)
    if copies is not None and active and active[0] in copies:
        head = copies[active[0]]
    return next(head.parameters()).dtype


def sequence_rewards(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One reward per right-padded sequence: at its last real token (decoders) or the model's own pooling (encoders).

    input_ids, attention_mask: [B, T]; returns [B] float32.
    """
    if is_last_token_pooling(model):
        lengths = attention_mask.sum(dim=-1)                                        # [B]
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        positions = rows * input_ids.shape[1] + lengths - 1                        # [B]
        return rewards_at_positions(model, input_ids, causal_mask_or_none(attention_mask), positions)
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1).float()


def causal_mask_or_none(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """For a causal decoder, right padding needs no attention mask: real tokens never attend to the pads
    after them, and rewards are read at real tokens only. Dropping the mask lets SDPA/flash use their
    causal fast path (the masked path is much slower on CPU). Left padding keeps the mask."""
    right_padded = bool((attention_mask[:, 0] == 1).all()) and bool(
        (attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
    return None if right_padded else attention_mask


def pad_batch(sequences: list[list[int]], pad_token_id: int, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into (input_ids [B, T], attention_mask [B, T])."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids.to(device), attention_mask.to(device)


def length_batches(lengths: list[int], token_budget: int, max_batch_size: int) -> list[list[int]]:
    """Group indices, longest first, so that batch_size * longest_in_batch <= token_budget.

    Sorting by length keeps padding small; the budget bounds memory whatever the length mix.
    A sequence longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * longest > token_budget or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
