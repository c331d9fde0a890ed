"""The one async LLM interface every agent, simulator and judge uses, plus its config and usage records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Sequence, runtime_checkable

from chat.backends.response_format import check_response_format
from chat.conversation import Message
from chat.errors import ConfigError
from chat.registry import registry

#: kind name -> backend class (`turnwise list backends`).
BACKENDS = registry("backends", "backend")


#: OpenAI's `response_format`: `{"type": "json_object"}` or
#: `{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": true}}`.
ResponseFormat = dict[str, Any]

#: Most alternatives per position `logprobs=k` may ask for (OpenAI's `top_logprobs` limit).
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the `top` alternatives at its position
    (token text -> logprob, the generated token included), as OpenAI's `logprobs.content[i]`."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "top": dict(self.top)}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TokenLogprob":
        return cls(str(row["token"]), float(row["logprob"]), {str(k): float(v) for k, v in row.get("top", {}).items()})


@dataclass(frozen=True)
class Completion:
    """A backend's answer. `logprobs` is filled only when the request asked for them (`logprobs=k`) and the
    backend can return them: one entry per generated token, each with its top-k alternatives."""

    text: str
    finish_reason: str  # "stop" | "length" | "error"
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    cached: bool = False
    logprobs: tuple[TokenLogprob, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"text": self.text, "finish_reason": self.finish_reason, "usage": dict(self.usage),
                               "cached": self.cached}
        if self.logprobs is not None:
            row["logprobs"] = [entry.to_dict() for entry in self.logprobs]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], cached: bool = False) -> "Completion":
        logprobs = row.get("logprobs")
        return cls(row["text"], row["finish_reason"], dict(row["usage"]), cached,
                   tuple(TokenLogprob.from_dict(entry) for entry in logprobs) if logprobs is not None else None)


@dataclass(frozen=True)
class ChatParams:
    """Every keyword of `ChatBackend.chat` for one request, checked; wrappers pass it along as one value
    and the response cache keys on it. `stop` is kept as a tuple (None when empty)."""

    temperature: float = 0.0
    max_tokens: int = 512
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    response_format: ResponseFormat | None = None
    logprobs: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop) if self.stop else None)
        if self.response_format is not None:
            check_response_format(self.response_format)
        if self.logprobs is not None and (isinstance(self.logprobs, bool) or not isinstance(self.logprobs, int)
                                          or not 0 <= self.logprobs <= MAX_TOP_LOGPROBS):
            raise ValueError(f"logprobs: expected an integer 0-{MAX_TOP_LOGPROBS} (alternatives per position), "
                             f"got {self.logprobs!r}")

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `chat(messages, **kwargs)`, `stop` as a list."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "stop": list(self.stop) if self.stop else None, "seed": self.seed,
                "response_format": self.response_format, "logprobs": self.logprobs}


@runtime_checkable
class ChatBackend(Protocol):
    """`await backend.chat(messages, ...) -> Completion` (DESIGN.md, "LLM backends")."""

    #: identifies backend kind and model for records, e.g. ``openai:gemma-2-9b-it``
    name: str
    #: everything about the backend that changes its answers, for the response cache key: kind, base_url,
    #: model, extra_body for servers; resolved path plus weights fingerprint for `local`
    cache_identity: str

    async def chat(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512,
                   stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        """`response_format` constrains the reply (servers receive it; `local` enforces it while decoding;
        `scripted` validates its replies against it). `logprobs=k` asks for the top-k alternatives at every
        generated position (0 <= k <= 20, as OpenAI's `top_logprobs`)."""
        ...

    async def aclose(self) -> None:
        ...


@dataclass
class BackendSpec:
    """One named backend in a config's `backends:` section.

    Parameters that choose the model:
        kind: registered backend kind (`openai`, `local`, ...).
        model: model name for the server, or for `local` a path / `embedded`.
        base_url: OpenAI-compatible endpoint (`openai` kind).
        api_key_env: NAME of the environment variable holding the API key; the key itself is never
            stored in configs, records, caches, logs or error messages.
    Parameters of the wrappers composed around every backend:
        timeout: seconds per request before it counts as failed and is retried (remote kinds only: an
            in-process backend has no network to hang on, and cancelling a batch would waste it).
        max_retries: retries after the first attempt on 429, 5xx, timeouts and connection errors.
        concurrency: requests in flight at once through this backend.
        cache: keep responses in the sqlite response cache (temperature > 0 only with a seed).
        cache_path: that cache's file (default `$TURNWISE_CACHE/responses.sqlite`; `turnwise run` keeps
            one per run directory).
    Parameters of the local backend:
        dtype: `auto` (float32 on CPU, bfloat16 on GPU), `float32` or `bfloat16`.
        quantize: `auto` (int8 dynamic on CPU, none on GPU), `int8` or `none`.
        max_batch_size: concurrent requests generated together in one batch.
        batch_wait_ms: how long the batcher waits for more requests before starting a batch.
    """

    kind: str
    model: str = "embedded"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float = 120.0
    max_retries: int = 6
    concurrency: int = 8
    cache: bool = True
    cache_path: str | None = None
    dtype: str = "auto"
    quantize: str = "auto"
    max_batch_size: int = 8
    batch_wait_ms: float = 20.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str, where: str = "backend") -> "BackendSpec":
        """Parse a config entry; `"local"` alone is shorthand for `{kind: local}`."""
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping with a 'kind', got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        if "kind" not in data:
            raise ConfigError(f"{where}.kind: missing field")
        if "api_key" in data:
            raise ConfigError(f"{where}.api_key: put the key in an environment variable and name it with api_key_env")
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra)


@dataclass
class Usage:
    """Counters for one role (simulator, judge, reviewer, ...)."""

    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    def count(self, completion: Completion) -> None:
        """Add one completion: a cache hit, or a call with its tokens."""
        if completion.cached:
            self.cache_hits += 1
            return
        self.calls += 1
        self.prompt_tokens += int(completion.usage.get("prompt_tokens", 0))
        self.completion_tokens += int(completion.usage.get("completion_tokens", 0))

    def add(self, other: "Usage") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, float]:
        return {f.name: round(getattr(self, f.name), 3) if f.name == "latency_s" else getattr(self, f.name)
                for f in fields(self)}


class UsageLedger:
    """Usage per role for one run; the runner prints it and writes it to the summary."""

    def __init__(self) -> None:
        self.by_role: dict[str, Usage] = {}

    def record(self, role: str, completion: Completion | None, started: float, error: bool = False) -> None:
        usage = self.by_role.setdefault(role, Usage())
        usage.latency_s += time.monotonic() - started
        if error or completion is None:
            usage.errors += 1
            return
        usage.count(completion)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_role.values():
            total.add(usage)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"by_role": {role: u.to_dict() for role, u in sorted(self.by_role.items())},
                "total": self.total().to_dict()}


def as_dicts(messages: Sequence[Message | dict[str, str]]) -> list[dict[str, str]]:
    """Messages as plain `{role, content}` dicts (for requests and cache keys)."""
    return [m.to_dict() if isinstance(m, Message) else {"role": m["role"], "content": m["content"]} for m in messages]
