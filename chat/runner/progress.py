"""Progress of a run: items/s, LLM calls/s, tokens/s and ETA, as a tqdm bar or periodic log lines."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

if TYPE_CHECKING:
    from chat.backends.base import UsageLedger

logger = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class RunProgress:
    """Counts finished and failed items of this run and shows the rates.

    On a terminal (`stream.isatty()`) it draws a tqdm bar whose postfix carries LLM calls/s,
    prompt+completion tokens/s (from the usage ledger) and the error count. Elsewhere (CI logs,
    redirected output) it logs one INFO line every `log_every_s` seconds instead, so logs stay short.
    `already_done` (records found in the output) starts the bar without counting toward the rates.
    """

    def __init__(self, *, total: int | None, already_done: int, description: str = "",
                 ledger: "UsageLedger | None" = None, enabled: bool = True, log_every_s: float = 30.0,
                 stream: TextIO | None = None):
        self.total = total
        self.already_done = already_done
        self.description = description
        self.ledger = ledger
        self.log_every_s = log_every_s
        self.done = 0
        self.errors = 0
        self.started = time.monotonic()
        self._last_log = self.started
        stream = stream if stream is not None else sys.stderr
        on_terminal = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._log_lines = enabled and not on_terminal
        self.bar: tqdm | None = None
        if on_terminal:
            self.bar = tqdm(total=total, initial=min(already_done, total) if total is not None else already_done,
                            desc=description or None, unit="item", file=stream, mininterval=0.5,
                            smoothing=0.1, dynamic_ncols=True)
        self._redirect: contextlib.ExitStack | None = None

    def __enter__(self) -> "RunProgress":
        if self.bar is not None:  # log records go through tqdm.write so they do not break the bar
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_total(self, total: int) -> None:
        """The input turned out to hold `total` items (known once a lazy input is exhausted)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def rates(self) -> dict[str, float]:
        """Per second over this run: items (finished or failed), LLM calls, prompt and completion tokens."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rates = {"items": (self.done + self.errors) / elapsed}
        if self.ledger is not None:
            usage = self.ledger.total()
            rates["calls"] = usage.calls / elapsed
            rates["prompt_tokens"] = usage.prompt_tokens / elapsed
            rates["completion_tokens"] = usage.completion_tokens / elapsed
        return rates

    def eta_s(self) -> float | None:
        rate = self.rates()["items"]
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.already_done - self.done - self.errors, 0) / rate

    def postfix(self) -> str:
        rates = self.rates()
        parts = []
        if "calls" in rates:
            parts.append(f"{rates['calls']:.2f} calls/s")
            parts.append(f"{rates['prompt_tokens']:.0f}+{rates['completion_tokens']:.0f} tok/s")
        parts.append(f"{self.errors} err")
        return ", ".join(parts)

    def status_line(self) -> str:
        processed = self.already_done + self.done + self.errors
        count = f"{processed}/{self.total}" if self.total is not None else f"{processed}"
        eta = self.eta_s()
        line = f"{self.description + ': ' if self.description else ''}{count} items, {self.rates()['items']:.2f} items/s, {self.postfix()}"
        return line + (f", ETA {_duration(eta)}" if eta is not None else "")

    def advance(self, done: int = 0, errors: int = 0) -> None:
        self.done += done
        self.errors += errors
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.update(done + errors)
        elif self._log_lines:
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s:
                self._last_log = now
                logger.info("%s", self.status_line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.close()
            self.bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None
