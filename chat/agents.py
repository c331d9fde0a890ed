"""Shared agent-step plumbing: typed parse errors, bounded re-asks, derived seeds, per-role usage of one item."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

from chat.backends.base import ChatBackend, Completion, ResponseFormat, Usage
from chat.conversation import Message
from chat.filters import PARSE_FAILURE

T = TypeVar("T")

#: `(messages sent, unusable reply, its parse error) -> the messages of the next attempt`.
Reask = Callable[[list[Message], str, "ParseError"], list[Message]]

_USAGE_KEYS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens")


class ParseError(ValueError):
    """A reply that cannot be used as the step's output; triggers a bounded re-ask."""


class StepFailed(Exception):
    """A step still had no usable reply after its re-asks (or its output failed a filter); `reason` names the
    drop counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def derive_seed(base: int | str, label: str) -> int:
    """A 31-bit seed from a base seed and a label (item id, or role/round/attempt)."""
    digest = hashlib.sha256(f"{base}/{label}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def reask_messages(request: Sequence[Message], reply: str, note: str) -> list[Message]:
    """`request`, then the unusable reply as the assistant's turn, then `note` (what was wrong) as the user's."""
    return [*request, Message("assistant", reply), Message("user", note)]


@dataclass
class RoleUsage:
    """LLM calls and tokens spent on one item, by role; cached replies count as cache hits only."""

    by_role: dict[str, Usage] = field(default_factory=dict)

    def count(self, role: str, completion: Completion) -> None:
        self.by_role.setdefault(role, Usage()).count(completion)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_role.values():
            total.add(usage)
        return total

    def to_dict(self) -> dict[str, object]:
        """`{calls, cache_hits, prompt_tokens, completion_tokens, by_role: {role: same four}}` (the record form)."""
        total = self.total()
        return {**{key: getattr(total, key) for key in _USAGE_KEYS},
                "by_role": {role: {key: getattr(u, key) for key in _USAGE_KEYS}
                            for role, u in sorted(self.by_role.items())}}


@dataclass
class AskResult(Generic[T]):
    """The attempts of one step: the parsed value (None unless `parsed`), every raw reply and parse error,
    and the completions themselves (their logprobs, when the step asked for them)."""

    value: T | None = None
    parsed: bool = False
    replies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)

    @property
    def reasks(self) -> int:
        return max(len(self.replies) - 1, 0)

    @property
    def reply(self) -> str:
        """The last raw reply."""
        return self.replies[-1]


async def ask_until_parsed(send: Callable[[list[Message], int], Awaitable[Completion]], request: Sequence[Message],
                           parse: Callable[[str], T], reask: Reask, *, max_reasks: int) -> AskResult[T]:
    """Send `request`, parse the reply; on ParseError send `reask(sent, reply, error)` instead, at most
    `max_reasks` times. `send(messages, attempt)` makes the call (sampling, seed, usage are the caller's).
    An unparseable step is reported (`parsed` False), never guessed; the caller decides what that means."""
    result: AskResult[T] = AskResult()
    messages = list(request)
    for attempt in range(max_reasks + 1):
        completion = await send(messages, attempt)
        result.completions.append(completion)
        result.replies.append(completion.text)
        try:
            result.value = parse(completion.text)
            result.parsed = True
            return result
        except ParseError as error:
            result.errors.append(str(error))
            if attempt < max_reasks:
                messages = reask(messages, completion.text, error)
    return result


@dataclass
class StepCaller:
    """Calls backends for one item: fixed sampling parameters, a seed derived per call label, usage per role,
    and `ask`, which re-asks a step at most `max_reasks` times while its reply does not parse. With
    `reask_temperature`, re-asks sample at least that hot: a small model asked again at a low temperature
    tends to repeat the reply that failed."""

    temperature: float
    max_tokens: int
    item_seed: int
    max_reasks: int = 2
    usage: RoleUsage = field(default_factory=RoleUsage)
    reasks: int = 0
    reask_temperature: float | None = None

    async def call(self, role: str, backend: ChatBackend, messages: Sequence[Message], label: str, *,
                   stop: Sequence[str] | None = None, response_format: ResponseFormat | None = None,
                   logprobs: int | None = None, temperature: float | None = None) -> Completion:
        """One request with the caller's sampling (or `temperature`), the seed derived from `label`, and
        `response_format` / `logprobs` passed through to the backend as given."""
        temperature = self.temperature if temperature is None else temperature
        completion = await backend.chat(list(messages), temperature=temperature, max_tokens=self.max_tokens,
                                        stop=list(stop) if stop else None, seed=derive_seed(self.item_seed, label),
                                        response_format=response_format, logprobs=logprobs)
        self.usage.count(role, completion)
        return completion

    async def ask(self, role: str, backend: ChatBackend, request: Sequence[Message], parse: Callable[[str], T],
                  label: str, reask: Reask, *, response_format: ResponseFormat | None = None,
                  logprobs: int | None = None) -> AskResult[T]:
        """The attempts of one step; attempt i is called with the label `<label>/<i>` (and the same
        `response_format` and `logprobs`; re-asks at `reask_temperature` when it is set)."""
        async def send(messages: list[Message], attempt: int) -> Completion:
            return await self.call(role, backend, messages, f"{label}/{attempt}", response_format=response_format,
                                   logprobs=logprobs, temperature=self.attempt_temperature(attempt))

        result = await ask_until_parsed(send, request, parse, reask, max_reasks=self.max_reasks)
        self.reasks += result.reasks
        return result

    def attempt_temperature(self, attempt: int) -> float:
        """The first attempt samples at `temperature`; re-asks at max(temperature, reask_temperature)."""
        if attempt == 0 or self.reask_temperature is None:
            return self.temperature
        return max(self.temperature, self.reask_temperature)

    async def ask_parsed(self, role: str, backend: ChatBackend, request: Sequence[Message], parse: Callable[[str], T],
                         label: str, reask: Reask, *, response_format: ResponseFormat | None = None,
                         where: str | None = None) -> T:
        """The parsed value of `ask`; StepFailed(PARSE_FAILURE) naming `where` (default: the label) when the
        reply still does not parse after `max_reasks` re-asks."""
        result = await self.ask(role, backend, request, parse, label, reask, response_format=response_format)
        if not result.parsed:
            raise StepFailed(PARSE_FAILURE, f"{where or label}: {result.errors[-1]} (after {self.max_reasks} re-asks)")
        return result.value


def count_usage(counters: Counter, usage: dict[str, Any]) -> None:
    """Add one item's usage (`RoleUsage.to_dict()`) to a run's counters: llm_calls, cache_hits, tokens."""
    counters["llm_calls"] += int(usage.get("calls", 0))
    if usage.get("cache_hits"):
        counters["cache_hits"] += int(usage["cache_hits"])
    counters["prompt_tokens"] += int(usage.get("prompt_tokens", 0))
    counters["completion_tokens"] += int(usage.get("completion_tokens", 0))
