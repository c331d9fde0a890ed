"""User-facing errors that the CLI turns into one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path


class TurnwiseError(Exception):
    """Base class for errors caused by the user's input or configuration (never a bug)."""


class InputError(TurnwiseError):
    """A bad input row: rendered as ``PATH:LINE: field: reason``."""

    def __init__(self, path: str | Path, line: int | None, field: str, reason: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        location = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{location}: {field}: {reason}" if field else f"{location}: {reason}")


class ConfigError(TurnwiseError):
    """A bad configuration value or command-line option."""


class BackendError(TurnwiseError):
    """An LLM backend failed for good (after retries); the message never contains secrets."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
