"""Build backends from config entries: the raw backend of a kind wrapped in usage, cache, concurrency and retry."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from chat.backends.base import BACKENDS, BackendSpec, ChatBackend, UsageLedger
from chat.backends.cache import CachedBackend, ResponseCache, default_cache_path
from chat.backends.retry import RetryingBackend
from chat.backends.wrappers import ConcurrencyLimitedBackend, UsageRecordingBackend
from chat.errors import ConfigError

#: BackendSpec.extra keys read by the retry wrapper, with their defaults (seconds).
RETRY_OPTIONS = {
    "retry_base_delay": 0.5,   # backoff before the first retry is uniform in [0, base]; doubles each retry
    "retry_max_delay": 30.0,   # cap of the exponential backoff
    "retry_after_cap": 60.0,   # longest server Retry-After that is honoured
}


def build_backend(spec: BackendSpec | dict[str, Any] | str, *, role: str = "default",
                  ledger: UsageLedger | None = None, cache_path: Path | None = None,
                  cache: bool | None = None) -> ChatBackend:
    """The backend a config entry describes, composed outermost first as
    usage (when `ledger` is given) -> cache -> concurrency limit -> retry -> raw backend.

    The cache sits outside the limit and the retries so that hits skip both. `cache=None` follows
    `spec.cache`, except for backends that declare `cacheable = False` (scripted); `cache_path`
    defaults to `spec.cache_path`, else `$TURNWISE_CACHE/responses.sqlite`. A registered kind is constructed
    with `Kind.from_spec(spec)` when it defines one, else `Kind(spec)`.
    """
    where = f"backends.{role}"
    if not isinstance(spec, BackendSpec):
        spec = BackendSpec.from_dict(spec, where=where)
    try:
        backend_class = BACKENDS.get(spec.kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}.kind: {exc}") from None
    _check_spec(spec, backend_class, where)
    try:
        raw = backend_class.from_spec(spec) if hasattr(backend_class, "from_spec") else backend_class(spec)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    backend: ChatBackend = RetryingBackend(
        raw, max_retries=spec.max_retries, timeout=spec.timeout if getattr(backend_class, "remote", True) else None,
        base_delay=float(spec.extra.get("retry_base_delay", RETRY_OPTIONS["retry_base_delay"])),
        max_delay=float(spec.extra.get("retry_max_delay", RETRY_OPTIONS["retry_max_delay"])),
        max_retry_after=float(spec.extra.get("retry_after_cap", RETRY_OPTIONS["retry_after_cap"])))
    backend = ConcurrencyLimitedBackend(backend, spec.concurrency)
    use_cache = cache if cache is not None else (spec.cache and getattr(raw, "cacheable", True))
    if use_cache:
        path = cache_path or (Path(spec.cache_path) if spec.cache_path else default_cache_path())
        backend = CachedBackend(backend, ResponseCache(path))
    if ledger is not None:
        backend = UsageRecordingBackend(backend, role, ledger)
    return backend


def build_backends(section: Mapping[str, Any], ledger: UsageLedger | None = None,
                   cache_path: Path | None = None, *, cache: bool | None = None) -> dict[str, ChatBackend]:
    """One backend per role of a config's `backends:` mapping (role name -> spec)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"backends: expected a mapping of role name -> backend, got {type(section).__name__}")
    return {str(role): build_backend(entry, role=str(role), ledger=ledger, cache_path=cache_path, cache=cache)
            for role, entry in section.items()}


async def aclose_backends(backends: Mapping[str, ChatBackend]) -> None:
    """Close every backend (HTTP clients, cache files), even if one of them fails to close."""
    results = await asyncio.gather(*(backend.aclose() for backend in backends.values()), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@asynccontextmanager
async def configured_backends(section: Mapping[str, Any], *,
                              build: bool = True) -> AsyncIterator[tuple[dict[str, ChatBackend], UsageLedger | None]]:
    """A run's backends: one per role of its `backends:` section, sharing a new ledger, closed on exit.
    With `build` False (the caller passes its own backends, as tests do) nothing is built: `({}, None)`."""
    ledger = UsageLedger()
    built: dict[str, ChatBackend] = {}
    try:
        built = build_backends(section, ledger) if build else {}
        yield built, ledger if built else None
    finally:
        if built:
            await aclose_backends(built)


def _check_spec(spec: BackendSpec, backend_class: type, where: str) -> None:
    """Reject values the wrappers cannot use and unknown `extra` keys (for kinds that declare theirs)."""
    if not isinstance(spec.model, str) or not spec.model:
        raise ConfigError(f"{where}.model: expected a non-empty string")
    if isinstance(spec.timeout, bool) or not isinstance(spec.timeout, (int, float)) or spec.timeout <= 0:
        raise ConfigError(f"{where}.timeout: expected seconds > 0, got {spec.timeout!r}")
    if isinstance(spec.max_retries, bool) or not isinstance(spec.max_retries, int) or spec.max_retries < 0:
        raise ConfigError(f"{where}.max_retries: expected an integer >= 0, got {spec.max_retries!r}")
    if isinstance(spec.concurrency, bool) or not isinstance(spec.concurrency, int) or spec.concurrency < 1:
        raise ConfigError(f"{where}.concurrency: expected an integer >= 1, got {spec.concurrency!r}")
    if not isinstance(spec.cache, bool):
        raise ConfigError(f"{where}.cache: expected true or false, got {spec.cache!r}")
    if spec.cache_path is not None and (not isinstance(spec.cache_path, str) or not spec.cache_path):
        raise ConfigError(f"{where}.cache_path: expected a file path, got {spec.cache_path!r}")
    for key in RETRY_OPTIONS:
        value = spec.extra.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{where}.{key}: expected seconds >= 0, got {value!r}")
    declared = getattr(backend_class, "EXTRA_KEYS", None)
    if declared is None:
        return
    allowed = set(declared) | set(RETRY_OPTIONS)
    for key in spec.extra:
        if key not in allowed:
            known = sorted({f.name for f in fields(BackendSpec)} - {"extra"} | allowed)
            raise ConfigError(f"{where}.{key}: unknown option for kind {spec.kind} (known: {', '.join(known)})")
