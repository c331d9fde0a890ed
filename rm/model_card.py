"""README.md model card of a trained RM: base model, data, training recipe, evaluation numbers when known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Hub metadata tags every turnwise RM carries.
TAGS = ("reward-model", "turnwise", "trl")


def _is_hub_reference(value: Any) -> bool:
    """A hub id or model name (not a local path), worth linking from the card's metadata."""
    return isinstance(value, str) and "/" in value and not Path(value).expanduser().exists() \
        and not value.startswith((".", "/", "~"))


def render_model_card(config: Any, result: dict[str, Any] | None = None) -> str:
    """The card's Markdown, with YAML front matter the hub reads (base_model, datasets, library_name, tags).

    `config` is the RMTrainConfig; `result` the TrainResult dict once training ended (None while training).
    """
    summary = config.summary()
    base = config.model_name_or_path if config.model_config is None else None
    front = ["---", f"library_name: {'peft' if config.use_peft else 'transformers'}", "pipeline_tag: text-classification"]
    if _is_hub_reference(base):
        front.append(f"base_model: {base}")
    datasets = [d for d in (config.train_data, config.eval_data) if _is_hub_reference(d)]
    if datasets:
        front += ["datasets:"] + [f"- {d}" for d in datasets]
    front += ["tags:"] + [f"- {tag}" for tag in TAGS] + ["---", ""]
    name = config.hub_model_id or Path(config.output_dir).name
    lines = [f"# {name}", "",
             "A scalar reward model (Bradley-Terry, reward read at the final token) trained with turnwise "
             "on TRL's RewardTrainer.", "", "## Base model", ""]
    if base is not None:
        lines.append(f"`{base}`" + (" with a LoRA adapter; the reward head is saved in full (modules_to_save)."
                                    if config.use_peft else " (all weights trained)."))
    else:
        lines.append(f"Randomly initialised from `model_config` ({config.model_config.get('model_type', '?')}); "
                     "the base weights are saved in `base_model/`." + (" LoRA adapter on top." if config.use_peft else ""))
    lines += ["", "## Data", "", f"- train: `{config.train_data or 'pairs passed in code'}`"]
    if result is not None:
        lines.append(f"- {result['train_pairs']} training pairs, {result['eval_pairs']} evaluation pairs")
        truncation = result.get("truncation", {}).get("train")
        if truncation:
            lines.append(f"- {truncation['truncated_sequences']} of {truncation['sequences']} training sequences lost "
                         f"earlier turns to fit max_length (none dropped)")
    if config.eval_data:
        lines.append(f"- eval: `{config.eval_data}`")
    lines += ["", "## Recipe", "", "| setting | value |", "|---|---|"]
    for key in ("max_length", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                "max_steps", "num_train_epochs", "use_peft", "lora_r", "lora_alpha", "load_in_4bit",
                "center_rewards_coefficient", "margin_key", "seed"):
        value = summary.get(key)
        if value is not None and not (key.startswith("lora_") and not config.use_peft):
            lines.append(f"| {key} | {value} |")
    lines += ["", "## Evaluation", ""]
    metrics = (result or {}).get("eval_metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4f} |" for key, value in sorted(metrics.items()) if isinstance(value, (int, float))]
    else:
        lines.append("No evaluation numbers yet (training in progress, or no evaluation data)."
                     if result is None else "No evaluation data was given.")
    if result is not None:
        lines += ["", f"Trained {result['global_step']} steps in {result['wall_seconds']:.0f} s."]
    lines += ["", "## Use", "", "```python", "from rm.model import RewardModel", "",
              f"rm = RewardModel.load(\"{name}\")",
              "rm.score([[{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]])",
              "```", "", "`turnwise_rm.json` beside the weights records max_length, the chat template, the head modules "
              "and the training config; `turnwise rm eval --model " + name + " --data ...` reports accuracy.", ""]
    return "\n".join(front + lines)


def write_model_card(output_dir: Path, config: Any, result: dict[str, Any] | None = None) -> Path:
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(config, result), encoding="utf-8")
    return path
