"""`local` backend: a transformers causal LM in-process; concurrent requests are decoded together in one batch."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import threading
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from chat.backends.base import BACKENDS, BackendSpec, Completion, ResponseFormat, TokenLogprob, as_dicts
from chat.backends.grammar import Grammar, GrammarEngine, schema_of
from chat.compute_thread import compute, run_compute
from chat.conversation import Message
from chat.embedded import resolve_model
from chat.errors import BackendError, ConfigError

if TYPE_CHECKING:  # torch loads on first use, so `turnwise --help` and `list` stay fast
    import torch

logger = logging.getLogger(__name__)

#: Written by chat/embedded.py into a converted model directory: `{"gguf_sha256": ...}` names the weights.
CONVERSION_MARKER = "turnwise-converted.json"
#: The most alternatives `logprobs=k` may ask for (OpenAI's `top_logprobs` limit).
MAX_TOP_LOGPROBS = 20


@dataclass
class GenerationRequest:
    """One chat request inside a batch; `seed` makes its sampling independent of the batch it lands in.
    `grammar` (a compiled `response_format`) constrains the row; `logprobs=k` fills `token_logprobs`."""

    prompt_ids: list[int]
    temperature: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    top_p: float = 1.0
    min_tokens: int = 1
    grammar: Grammar | None = None
    logprobs: int | None = None
    output_ids: list[int] = field(default_factory=list)
    token_logprobs: list[TokenLogprob] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""


class LocalEngine:
    """A loaded model and tokenizer plus a greedy/sampling decode loop over a batch of requests.

    The decode loop is written out (rather than calling `model.generate`) so that each row keeps
    its own temperature, seed, token limit and stop strings, finished rows leave the batch at once,
    and logits are computed only for the last position through a contiguous copy of the output
    projection (for Gemma 3 270M the 262k x 640 vocabulary matmul dominates a decode step).

    Constrained rows (a `grammar`) each get their own matcher: every step the row's allowed-token
    bitmask sets the other logits to -inf before the pick, the matcher accepts the picked token, and
    end-of-turn is allowed only where the grammar may end (so the reply stops there). `min_tokens`
    does not apply to them: the grammar alone decides when the reply may end.
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
        self.dtype = dtype
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
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self.cache_identity = engine_identity(model_path, dtype, quantize,
                                              getattr(self.model.config, "_commit_hash", None))
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
        #: the decoder's KV-cache argument: `cache` in transformers >= 5.2x, `past_key_values` before
        self.cache_argument = ("cache" if "cache" in inspect.signature(self.decoder.forward).parameters
                               else "past_key_values")
        self.lock = threading.Lock()
        #: how many batches of each size were decoded (for tests and benchmarks)
        self.batch_sizes: Counter[int] = Counter()
        self._grammar_engine: GrammarEngine | None = None
        self._grammar_lock = threading.Lock()
        self._token_text: dict[int, str] = {}

    @property
    def grammar_engine(self) -> GrammarEngine:
        """The grammar compiler for this tokenizer, built on the first constrained request (~1-3 s)."""
        with self._grammar_lock:
            if self._grammar_engine is None:
                self._grammar_engine = GrammarEngine(self.tokenizer, self.vocab_size, sorted(self.eos_ids))
            return self._grammar_engine

    def compile(self, response_format: ResponseFormat | None) -> Grammar | None:
        """The compiled grammar for `response_format` (None for free text); BackendError if it cannot compile."""
        if schema_of(response_format) is None:
            return None
        return self.grammar_engine.compile(response_format)

    def token_text(self, token: int) -> str:
        """The text of one token (memoized: logprobs decode only the top-k ids of each position)."""
        text = self._token_text.get(token)
        if text is None:
            text = self._token_text[token] = self.tokenizer.decode([token])
        return text

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

        with self.lock, torch.inference_mode():
            self.batch_sizes[len(requests)] += 1
            generators = [_generator(r.seed) for r in requests]
            matchers = [r.grammar.matcher() if r.grammar is not None else None for r in requests]
            bitmask = self.grammar_engine.new_bitmask(len(requests)) if any(m is not None for m in matchers) else None
            hidden, cache, attention_mask, position_ids = self._prefill(requests)
            active = list(range(len(requests)))  # request index of each batch row
            eos = torch.tensor(sorted(self.eos_ids), device=self.device)
            while True:
                logits = self.logits(hidden)  # (rows, vocab)
                constrained = [row for row, i in enumerate(active) if matchers[i] is not None]
                for row, i in enumerate(active):
                    if matchers[i] is None and len(requests[i].output_ids) < requests[i].min_tokens:
                        logits[row, eos] = float("-inf")
                if constrained:
                    for row in constrained:
                        matchers[active[row]].fill(bitmask, row)
                    self.grammar_engine.apply(logits, bitmask, constrained)
                next_tokens = [_pick(logits[row], requests[i], generators[i]) for row, i in enumerate(active)]
                self._record_logprobs(logits, active, requests, next_tokens)
                keep = []
                for row, (i, token) in enumerate(zip(active, next_tokens)):
                    if matchers[i] is not None and not matchers[i].accept(token):
                        logger.warning("local: the grammar rejected its own pick %d; ending the reply", token)
                        requests[i].text = self.tokenizer.decode(requests[i].output_ids, skip_special_tokens=True)
                        requests[i].finish_reason = "error"
                    elif not self._advance(requests[i], token):
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
                                      use_cache=True, **{self.cache_argument: cache}).last_hidden_state[:, -1]

    def _prefill(self, requests: list[GenerationRequest]):
        """Run the prompts: (last hidden state per row, the KV cache, attention mask, position ids), left-padded
        to the longest prompt. On CPU, prompts of different lengths are prefilled one at a time and their caches
        padded into one: for 8 judge prompts of 500-800 tokens on 2 cores that prefilled 212 tok/s against 124 for
        one padded, masked batch (bench/NOTES.md, engine throughput). Caches with sliding-window layers, which keep
        only the last window of each row, are prefilled as one padded batch."""
        import torch
        import torch.nn.functional as F
        from transformers import DynamicCache

        width = max(len(r.prompt_ids) for r in requests)
        attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, request in enumerate(requests):
            attention_mask[row, width - len(request.prompt_ids):] = 1
        attention_mask = attention_mask.to(self.device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        one_by_one = (self.device.type == "cpu" and len({len(r.prompt_ids) for r in requests}) > 1
                      and not any(getattr(layer, "is_sliding", False) for layer in cache.layers))
        if not one_by_one:
            input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
            for row, request in enumerate(requests):
                input_ids[row, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
            hidden = self.decoder(input_ids=input_ids.to(self.device), attention_mask=attention_mask,
                                  position_ids=position_ids, use_cache=True,
                                  **{self.cache_argument: cache}).last_hidden_state[:, -1]
            return hidden, cache, attention_mask, position_ids
        hiddens, caches = [], []
        for request in requests:
            own = DynamicCache(config=self.model.config)
            ids = torch.tensor([request.prompt_ids], dtype=torch.long, device=self.device)
            hiddens.append(self.decoder(input_ids=ids, use_cache=True,
                                        **{self.cache_argument: own}).last_hidden_state[:, -1])
            caches.append(own)
        for index in range(len(caches[0].layers)):
            layers = [own.layers[index] for own in caches]
            keys = torch.cat([F.pad(layer.keys, (0, 0, width - layer.keys.shape[-2], 0)) for layer in layers])
            values = torch.cat([F.pad(layer.values, (0, 0, width - layer.values.shape[-2], 0)) for layer in layers])
            cache.update(keys, values, index)
        return torch.cat(hiddens), cache, attention_mask, position_ids

    def _record_logprobs(self, logits: "torch.Tensor", active: list[int], requests: list[GenerationRequest],
                         picks: list[int]) -> None:
        """Append a TokenLogprob to every row that asked for them: log-softmax of the logits the pick was made
        from (after the grammar and min_tokens masks, before temperature); only the top-k ids are decoded."""
        import torch

        rows = [row for row, i in enumerate(active) if requests[i].logprobs is not None and picks[row] not in self.eos_ids]
        if not rows:
            return
        logprobs = torch.log_softmax(logits[rows], dim=-1)
        k = max(requests[active[row]].logprobs for row in rows)
        top_values, top_ids = torch.topk(logprobs, k, dim=-1) if k else (None, None)
        for n, row in enumerate(rows):
            request, token = requests[active[row]], picks[row]
            top: dict[str, float] = {}
            if request.logprobs:
                for value, top_id in zip(top_values[n, :request.logprobs].tolist(), top_ids[n, :request.logprobs].tolist()):
                    if value != float("-inf"):
                        top.setdefault(self.token_text(top_id), value)
            chosen = float(logprobs[n, token])
            top.setdefault(self.token_text(token), chosen)
            request.token_logprobs.append(TokenLogprob(self.token_text(token), chosen, top))

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


def engine_identity(model_path: str, dtype: str, quantize: str, commit: str | None = None) -> str:
    """`local|<resolved path>|<weights fingerprint>|dtype=..|quantize=..`: what the loaded weights answer with.
    A directory whose weights change under the same path gets a new fingerprint, so the response cache never
    answers a new model's requests with an old model's replies; a hub id is pinned by its commit."""
    path = Path(model_path)
    if path.is_dir():
        where, fingerprint = str(path.resolve()), weights_fingerprint(path)
    else:
        where, fingerprint = model_path, f"commit:{commit or 'unknown'}"
    return f"local|{where}|{fingerprint}|dtype={dtype}|quantize={quantize}"


def weights_fingerprint(model_dir: Path) -> str:
    """`gguf:<sha256>` from the conversion marker when chat/embedded.py converted the directory, else a sha256
    of config.json plus the name, size and mtime of every other file in it (weights, tokenizer, template)."""
    try:
        marked = json.loads((model_dir / CONVERSION_MARKER).read_text(encoding="utf-8")).get("gguf_sha256")
    except (OSError, ValueError, AttributeError):
        marked = None
    if isinstance(marked, str) and marked:
        return f"gguf:{marked}"
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    digest.update(config.read_bytes() if config.is_file() else b"")
    for entry in sorted(model_dir.iterdir()):
        if entry.is_file() and entry.name != "config.json":
            stat = entry.stat()
            digest.update(f"\0{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return f"files:{digest.hexdigest()[:16]}"


def _quantize_int8_dynamic(model: "torch.nn.Module") -> "torch.nn.Module":
    """int8 weights with one scale per output channel, activations quantized per batch (VNNI/AVX-512 kernels):
    on 2 CPU cores Gemma 3 270M decodes ~2x faster at batch 1 and ~4x at batch 8 than float32 (bench/RESULTS.md).

    Per-channel weight scales matter: with one scale per tensor, Qwen2.5-0.5B-Instruct's outlier channels
    break its answers ("2 + 3" -> "4", refusals of harmless questions); per channel it answers as in float32.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks eager-mode quantization deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                                      dtype=torch.qint8)


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
                await compute(self.engine.generate, [r for r, _ in batch])
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
    """The shared engine of `model`, converted, loaded and later decoded on the compute thread
    (chat/compute_thread.py: one thread does the process's tensor work)."""
    path = run_compute(resolve_model, model)
    with _ENGINES_LOCK:
        key = (path, dtype, quantize)
        if key not in _ENGINES:
            _ENGINES[key] = run_compute(LocalEngine, path, dtype, quantize)
        return _ENGINES[key]


@BACKENDS.register("local", "transformers model in-process (the model given by `model:`; `embedded` = the default "
                            "instruct model); batches concurrent requests, enforces response_format")
class LocalBackend:
    """The `local` backend: the model given by `model:` (a directory, a hub id, or an embedded name from
    `chat.embedded.resolve_model`; `embedded` = the default instruct model), with the tokenizer's chat
    template. On CPU the default `quantize: auto` runs int8 dynamic quantization (`quantize: none` for
    the exact float weights). Greedy outputs are not bit-identical across batch compositions.

    `response_format` (`json_object`, `json_schema`) is enforced while decoding by the grammar engine of
    chat/backends/grammar.py; a schema it cannot compile is a BackendError. `logprobs=k` returns one
    TokenLogprob per generated token: its logprob and the top-k alternatives from the log-softmax of the
    logits the pick was made from (after the grammar mask, before temperature)."""

    #: in-process: the retry wrapper applies no per-request timeout (see BackendSpec.timeout)
    remote = False

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.engine = load_engine(spec.model, spec.dtype, spec.quantize)
        self.name = f"local:{os.path.basename(spec.model.rstrip('/'))}"
        self.top_p = float(spec.extra.get("top_p", 1.0))
        # like vLLM's min_tokens: end-of-turn is masked until this many tokens exist (a chat reply is never empty)
        self.min_tokens = int(spec.extra.get("min_tokens", 1))
        self.cache_identity = f"{self.engine.cache_identity}|top_p={self.top_p}|min_tokens={self.min_tokens}"

    def _batcher(self) -> _Batcher:
        loop = asyncio.get_running_loop()
        per_loop = _BATCHERS.setdefault(loop, {})
        key = id(self.engine)
        if key not in per_loop:
            per_loop[key] = _Batcher(self.engine, self.spec.max_batch_size, self.spec.batch_wait_ms)
        return per_loop[key]

    async def chat(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512,
                   stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        if logprobs is not None and not 0 <= int(logprobs) <= MAX_TOP_LOGPROBS:
            raise BackendError(f"{self.name}: logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {logprobs}")
        prompt_ids = self.engine.encode_chat(as_dicts(messages))
        if len(prompt_ids) + max_tokens > self.engine.context_length:
            raise BackendError(f"{self.name}: prompt of {len(prompt_ids)} tokens + max_tokens {max_tokens} exceeds "
                               f"the context length {self.engine.context_length}")
        grammar = await asyncio.to_thread(self.engine.compile, response_format) if response_format is not None else None
        request = GenerationRequest(prompt_ids, float(temperature), int(max_tokens), tuple(stop or ()), seed,
                                    self.top_p, min(self.min_tokens, int(max_tokens)), grammar,
                                    None if logprobs is None else int(logprobs))
        done = await self._batcher().submit(request)
        return Completion(done.text, done.finish_reason,
                          {"prompt_tokens": len(prompt_ids), "completion_tokens": len(done.output_ids)},
                          logprobs=tuple(done.token_logprobs) if logprobs is not None else None)

    async def aclose(self) -> None:
        return None
