"""Progress of a run: items/s, LLM calls/s, tokens/s and ETA, as a tqdm bar or periodic plain lines."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from chat.backends.base import Usage

if TYPE_CHECKING:
    from chat.backends.base import UsageLedger


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class RunProgress:
    """Counts finished and failed items of this run and shows the rates.

    On a terminal (`stream.isatty()`) it draws a tqdm bar whose postfix carries LLM calls/s,
    prompt+completion tokens/s (from the usage ledger) and the error count. Elsewhere (CI logs,
    output redirected to a file) it writes one plain status line to `stream` every `log_every_s`
    seconds from a timer thread, whether or not an item finished in between (a stage whose items
    each take minutes still shows its LLM calls and tokens/s), and a last line when such a run ends;
    a run shorter than one interval writes nothing.
    `already_done` (records found in the output) starts the count without counting toward the rates.
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
        self.stream = stream if stream is not None else sys.stderr
        on_terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._log_lines = enabled and not on_terminal
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._timer: threading.Thread | None = None
        self._lines_written = 0
        self.bar: tqdm | None = None
        if on_terminal:
            self.bar = tqdm(total=total, initial=min(already_done, total) if total is not None else already_done,
                            desc=description or None, unit="item", file=self.stream, mininterval=0.5,
                            smoothing=0.1, dynamic_ncols=True)
        self._redirect: contextlib.ExitStack | None = None

    def __enter__(self) -> "RunProgress":
        if self.bar is not None:  # log records go through tqdm.write so they do not break the bar
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm())
        elif self._log_lines:
            self._timer = threading.Thread(target=self._write_periodically, name="run-progress", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_total(self, total: int) -> None:
        """The input turned out to hold `total` items (known once a lazy input is exhausted)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def usage(self) -> Usage | None:
        """The ledger's totals so far; safe to call from the timer thread while the run records calls."""
        if self.ledger is None:
            return None
        total = Usage()
        for usage in list(self.ledger.by_role.values()):  # list(): a snapshot, even if a role is being added
            total.add(usage)
        return total

    def rates(self) -> dict[str, float]:
        """Per second over this run: items (finished or failed), LLM calls, prompt and completion tokens."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rates = {"items": (self.done + self.errors) / elapsed}
        usage = self.usage()
        if usage is not None:
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
        """One plain line, e.g. `augment music: 3/16 items, 0.05 items/s, 42 LLM calls, 0.35 calls/s,
        120+13 tok/s, 0 err, 01:30 elapsed, ETA 04:20` (tok/s: prompt+completion)."""
        processed = self.already_done + self.done + self.errors
        count = f"{processed}/{self.total}" if self.total is not None else f"{processed}"
        usage = self.usage()
        calls = f"{usage.calls} LLM calls, " if usage is not None else ""
        eta = self.eta_s()
        line = (f"{self.description + ': ' if self.description else ''}{count} items, "
                f"{self.rates()['items']:.2f} items/s, {calls}{self.postfix()}, "
                f"{_duration(time.monotonic() - self.started)} elapsed")
        return line + (f", ETA {_duration(eta)}" if eta is not None else "")

    def write_line(self, line: str) -> None:
        with self._write_lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _write_periodically(self) -> None:
        while not self._stop.wait(self.log_every_s):
            self.write_line(self.status_line())
            self._lines_written += 1

    def advance(self, done: int = 0, errors: int = 0) -> None:
        self.done += done
        self.errors += errors
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.update(done + errors)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.close()
            self.bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None
        if self._timer is not None:
            self._stop.set()
            self._timer.join()
            self._timer = None
            if self._lines_written:  # a run shorter than one interval stays silent
                self.write_line(f"{self.status_line()} (run ended)")
