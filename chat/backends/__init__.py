"""LLM backends: the one async chat interface, the registered kinds, the wrappers and `build_backend`."""

from __future__ import annotations

import importlib
import importlib.util

from chat.backends.base import (BACKENDS, BackendSpec, ChatBackend, ChatParams, Completion, ResponseFormat,
                                TokenLogprob, Usage, UsageLedger, as_dicts)
from chat.backends.cache import CachedBackend, ResponseCache, default_cache_path, request_key
from chat.backends.factory import aclose_backends, build_backend, build_backends, configured_backends
from chat.backends.openai_backend import OpenAIBackend  # registers the "openai" kind
from chat.backends.retry import RetryingBackend
from chat.backends.scripted import RecordedRequest, ScriptedBackend, ScriptExhausted  # registers "scripted"
from chat.backends.wrappers import ConcurrencyLimitedBackend, UsageRecordingBackend

# The in-process transformers backend registers the "local" kind.
if importlib.util.find_spec("chat.backends.local") is not None:
    importlib.import_module("chat.backends.local")

__all__ = [
    "BACKENDS", "BackendSpec", "CachedBackend", "ChatBackend", "ChatParams", "Completion", "ConcurrencyLimitedBackend",
    "OpenAIBackend", "RecordedRequest", "ResponseCache", "ResponseFormat", "RetryingBackend", "ScriptExhausted",
    "ScriptedBackend", "TokenLogprob", "Usage", "UsageLedger", "UsageRecordingBackend", "aclose_backends", "as_dicts", "build_backend",
    "build_backends", "configured_backends", "default_cache_path", "request_key",
]
