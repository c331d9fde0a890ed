"""`scripted` backend: deterministic replies from a list, a function or a script file; records every request."""

from __future__ import annotations

import json as jsonlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence, Union

import yaml

from chat.backends.base import BACKENDS, BackendSpec, ChatParams, Completion, ResponseFormat, TokenLogprob, as_dicts
from chat.backends.response_format import reply_mismatch
from chat.conversation import Message
from chat.errors import BackendError, ConfigError, InputError

#: One scripted reply: its text, a full Completion, or an error to raise for that request.
Reply = Union[str, Completion, BackendError]
#: `(messages as dicts, params) -> reply text or Completion`; params holds temperature, max_tokens, stop, seed,
#: response_format and logprobs (`ChatParams.kwargs()`).
Responder = Callable[[list[dict[str, str]], dict[str, Any]], Union[str, Completion]]


class RecordedRequest(NamedTuple):
    """One request the scripted backend received (unpacks as `messages, params`)."""

    messages: list[dict[str, str]]
    params: dict[str, Any]


class ScriptExhausted(BackendError):
    """More requests arrived than the script has replies."""


def count_words(text: str) -> int:
    """Approximate token count: whitespace-separated words."""
    return len(text.split())


@BACKENDS.register("scripted", "deterministic replies from a list or script file, for tests and offline dry runs")
class ScriptedBackend:
    """Answers request i with `replies[i]` (or `responder(messages, params)`) and records every request.

    Stop sequences are applied like a server would (the text is cut before the first one); usage
    counts whitespace words. Unit tests assert on `.requests`: the exact prompts and call count.

    With a `response_format`, a reply that finished normally must satisfy it (a JSON object, or JSON
    matching the schema) or the request fails with a non-retryable BackendError naming the mismatch, so
    a test cannot script an answer the format would have ruled out. A reply's `logprobs` are returned
    only when the request asked for them (`logprobs=k`); a reply without any gives `logprobs=None`.
    `cache_identity` is the name (`scripted:<model>`).
    """

    #: keys this backend accepts in BackendSpec.extra
    EXTRA_KEYS = frozenset({"script", "replies"})
    #: scripted replies are cheap and deterministic: caching them would only hide script edits
    cacheable = False

    def __init__(self, replies: Sequence[Reply] | Responder, *, name: str = "scripted"):
        self.name = name
        self.cache_identity = name
        self.requests: list[RecordedRequest] = []
        if callable(replies):
            self._responder: Responder | None = replies
            self._replies: list[Reply] = []
        else:
            self._responder = None
            self._replies = list(replies)
        self._next = 0

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> "ScriptedBackend":
        """Replies from `extra.script` (a JSONL, JSON or YAML list file) or inline `extra.replies`."""
        script, inline = spec.extra.get("script"), spec.extra.get("replies")
        if (script is None) == (inline is None):
            raise ConfigError("script: give exactly one of 'script' (path of a JSONL/YAML list of replies) "
                              "or 'replies' (an inline list) for kind scripted")
        if script is not None:
            return cls(load_script(Path(script)), name=f"scripted:{spec.model}")
        if not isinstance(inline, list):
            raise ConfigError(f"replies: expected a list, got {type(inline).__name__}")
        replies = []
        for i, item in enumerate(inline):
            try:
                replies.append(parse_reply(item))
            except ValueError as exc:
                raise ConfigError(f"replies[{i}]: {exc}") from None
        return cls(replies, name=f"scripted:{spec.model}")

    @property
    def calls(self) -> int:
        return len(self.requests)

    @property
    def remaining(self) -> int | None:
        """Replies left in the script (None for a responder function)."""
        return None if self._responder is not None else len(self._replies) - self._next

    async def chat(self, messages: Sequence[Message | dict[str, str]], *, temperature: float = 0.0,
                   max_tokens: int = 512, stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        params = ChatParams(temperature, max_tokens, stop, seed, response_format, logprobs)
        request = RecordedRequest(as_dicts(messages), params.kwargs())
        self.requests.append(request)
        if self._responder is not None:
            reply: Reply = self._responder(request.messages, dict(request.params))
        elif self._next < len(self._replies):
            reply = self._replies[self._next]
            self._next += 1
        else:
            last_user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
            raise ScriptExhausted(f"{self.name}: script ran out: request {len(self.requests)} arrived but only "
                                  f"{len(self._replies)} replies are scripted (last user message: "
                                  f"{last_user[:80]!r})")
        if isinstance(reply, BackendError):
            raise reply
        if isinstance(reply, str):
            text = cut_at_stop(reply, stop)
            prompt_tokens = sum(count_words(m["content"]) for m in request.messages)
            reply = Completion(text, "stop", {"prompt_tokens": prompt_tokens, "completion_tokens": count_words(text)})
        elif not isinstance(reply, Completion):
            raise TypeError(f"{self.name}: a scripted reply must be str, Completion or BackendError, "
                            f"got {type(reply).__name__}")
        if reply.finish_reason == "stop":
            self._check_format(reply.text, response_format)
        return reply if logprobs is not None or reply.logprobs is None else replace(reply, logprobs=None)

    def _check_format(self, text: str, response_format: ResponseFormat | None) -> None:
        """Raise BackendError unless `text` satisfies `response_format`."""
        try:
            mismatch = reply_mismatch(text, response_format)
        except ValueError as exc:
            raise BackendError(f"{self.name}: cannot check replies against this response_format: {exc}") from None
        if mismatch is not None:
            kind = response_format["type"] if response_format else ""
            if kind == "json_schema":
                kind += f" {response_format['json_schema']['name']!r}"
            raise BackendError(f"{self.name}: scripted reply {len(self.requests)} does not match response_format "
                               f"{kind}: {mismatch} (reply: {text[:80]!r})")

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        script = "responder" if self._responder is not None else f"{len(self._replies)} replies"
        return f"ScriptedBackend(name={self.name!r}, {script}, calls={self.calls})"


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to (not including) the earliest stop sequence, as OpenAI-compatible servers return it."""
    cut = len(text)
    for sequence in stop or ():
        at = text.find(sequence) if sequence else -1
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def parse_reply(item: Any) -> Reply:
    """A script entry: a string, `{text, finish_reason?, logprobs?}` or `{error, retryable?}`; `logprobs` is a
    list of `{token, logprob, top?: {token: logprob}}`, one per generated token."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        finish_reason = item.get("finish_reason", "stop")
        if not isinstance(finish_reason, str):
            raise ValueError("finish_reason: expected a string")
        text = item["text"]
        logprobs = parse_logprobs(item["logprobs"]) if item.get("logprobs") is not None else None
        return Completion(text, finish_reason, {"prompt_tokens": 0, "completion_tokens": count_words(text)},
                          logprobs=logprobs)
    if isinstance(item, dict) and isinstance(item.get("error"), str):
        retryable = item.get("retryable", False)
        if not isinstance(retryable, bool):
            raise ValueError("retryable: expected true or false")
        return BackendError(item["error"], retryable=retryable)
    raise ValueError(f"expected a string or a mapping with 'text' or 'error', got {_describe(item)}")


def parse_logprobs(entries: Any) -> tuple[TokenLogprob, ...]:
    """A script reply's `logprobs` list, checked entry by entry (ValueError names the bad field)."""
    if not isinstance(entries, list):
        raise ValueError(f"logprobs: expected a list of {{token, logprob, top}}, got {_describe(entries)}")
    parsed = []
    for position, entry in enumerate(entries):
        where = f"logprobs[{position}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise ValueError(f"{where}: expected a mapping with a string 'token'")
        if not _is_number(entry.get("logprob")):
            raise ValueError(f"{where}.logprob: expected a number")
        top = entry.get("top", {})
        if not isinstance(top, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in top.items()):
            raise ValueError(f"{where}.top: expected a mapping of token -> logprob")
        parsed.append(TokenLogprob.from_dict(entry))
    return tuple(parsed)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_script(path: Path) -> list[Reply]:
    """Replies from a JSONL file (one JSON value a line) or a JSON/YAML file holding a list."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, None, "", "script file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(path, None, "", f"cannot read script: {exc.strerror}") from None
    if path.suffix == ".jsonl":
        entries: list[tuple[int | None, Any]] = []
        for line_number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((line_number, jsonlib.loads(line)))
            except jsonlib.JSONDecodeError as exc:
                raise InputError(path, line_number, "", f"invalid JSON: {exc.msg}") from None
    else:
        try:
            document = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(path, mark.line + 1 if mark else None, "", f"invalid YAML/JSON: {problem}") from None
        if not isinstance(document, list):
            raise InputError(path, None, "", f"expected a list of replies, got {_describe(document)}")
        entries = [(None, item) for item in document]
    replies = []
    for index, (line_number, item) in enumerate(entries):
        try:
            replies.append(parse_reply(item))
        except ValueError as exc:
            raise InputError(path, line_number, "" if line_number else f"replies[{index}]", str(exc)) from None
    if not replies:
        raise InputError(path, None, "", "script has no replies")
    return replies


def _describe(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
