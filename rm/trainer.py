"""TRL RewardTrainer with turnwise batches: padded or padding-free pairs, rewards read at each sequence's last token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from trl import RewardTrainer

from rm.rewards import is_last_token_pooling, pad_batch, rewards_at_positions


def bradley_terry_loss(rewards_chosen: torch.Tensor, rewards_rejected: torch.Tensor,
                       margin: torch.Tensor | None = None, center_coefficient: float | None = None) -> torch.Tensor:
    """docs/methods.md, RM step 4: -log sigmoid(r_chosen - r_rejected [- margin]), averaged over pairs.

    rewards_*: [B]; margin: [B] or None. `center_coefficient` adds c * mean((r_c + r_r)^2), which keeps
    rewards centred on zero (Eisenstein et al. 2023, as TRL's `center_rewards_coefficient`).
    """
    difference = rewards_chosen - rewards_rejected                  # [B]
    if margin is not None:
        difference = difference - margin
    loss = -F.logsigmoid(difference).mean()
    if center_coefficient:
        loss = loss + center_coefficient * torch.mean((rewards_chosen + rewards_rejected) ** 2)
    return loss


@dataclass
class PreferenceCollator:
    """Batches tokenized pairs: rows 0..B-1 are the chosen sequences, B..2B-1 the rejected ones.

    Padded mode: right-padded `input_ids`/`attention_mask` [2B, T]. Padding-free mode: all 2B
    sequences concatenated into one row [1, N] with `position_ids` restarting at 0 per sequence
    (attention kernels then keep sequences apart). Both give `reward_positions` [2B], the flat index
    of each sequence's last token, where the reward is read.
    """

    pad_token_id: int
    padding_free: bool = False
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        sequences = [list(e["chosen_ids"]) for e in examples] + [list(e["rejected_ids"]) for e in examples]
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
        if self.padding_free:
            batch = {
                "input_ids": torch.tensor([[t for s in sequences for t in s]], dtype=torch.long),
                "position_ids": torch.cat([torch.arange(n) for n in lengths.tolist()]).unsqueeze(0),
                "reward_positions": torch.cumsum(lengths, 0) - 1,
            }
        else:
            input_ids, attention_mask = pad_batch(sequences, self.pad_token_id)
            if self.pad_to_multiple_of:
                extra = -input_ids.shape[1] % self.pad_to_multiple_of
                input_ids = F.pad(input_ids, (0, extra), value=self.pad_token_id)
                attention_mask = F.pad(attention_mask, (0, extra), value=0)
            rows = torch.arange(len(sequences))
            batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                     "reward_positions": rows * input_ids.shape[1] + lengths - 1}
        if "margin" in examples[0]:
            batch["margin"] = torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float)
        return batch


class TurnwiseRewardTrainer(RewardTrainer):
    """RewardTrainer whose loss reads rewards at explicit last-token positions.

    TRL's default finds the last token by searching for the pad id, which breaks when pad == eos and
    cannot work without padding; explicit positions support padding-free batches and match
    `RewardModel.score` exactly.
    """

    #: Set by `train_reward_model`: writes turnwise's README.md (replaces TRL's card at checkpoints and pushes).
    model_card_writer: Any = None

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None,
                          tags: Any = None, **kwargs: Any) -> None:
        if self.model_card_writer is None:
            super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        elif self.is_world_process_zero():
            self.model_card_writer()

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            # `length` feeds the length-grouped sampler; the collator ignores it.
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "length"]

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        mode = "train" if self.model.training else "eval"
        if is_last_token_pooling(model):
            rewards = rewards_at_positions(model, inputs["input_ids"], inputs.get("attention_mask"),
                                           inputs["reward_positions"], inputs.get("position_ids"))   # [2B]
        else:
            rewards = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            use_cache=False).logits.squeeze(-1).float()                              # [2B]
        rewards_chosen, rewards_rejected = torch.chunk(rewards, chunks=2)                              # [B], [B]
        loss = bradley_terry_loss(rewards_chosen, rewards_rejected, inputs.get("margin"),
                                  self.args.center_rewards_coefficient)

        if mode == "train":
            mask = inputs.get("attention_mask")
            tokens = mask.sum() if mask is not None else torch.tensor(inputs["input_ids"].numel())
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(tokens.to(rewards.device)).sum().item())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            all_rewards = self.accelerator.gather(rewards.detach())
            self._metrics[mode]["min_reward"].append(all_rewards.min().item())
            self._metrics[mode]["mean_reward"].append(all_rewards.mean().item())
            self._metrics[mode]["max_reward"].append(all_rewards.max().item())
            accuracy = (rewards_chosen > rewards_rejected).float().mean()
            self._metrics[mode]["accuracy"].append(self.accelerator.gather_for_metrics(accuracy).mean().item())
            margin = (rewards_chosen - rewards_rejected).mean()
            self._metrics[mode]["margin"].append(self.accelerator.gather_for_metrics(margin).mean().item())
        if return_outputs:
            return loss, {"logits": rewards.detach().unsqueeze(-1)}
        return loss

    @property
    def total_train_tokens(self) -> int:
        """Real (non-padding) tokens seen in training so far."""
        return self._total_train_tokens
