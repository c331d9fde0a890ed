"""The resumable job loop: items with stable ids -> async workers -> append-only JSONL sink (DESIGN.md, "Runner")."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, Sequence, TypeVar

from chat.errors import ConfigError, InputError, TurnwiseError
from chat.runner.progress import RunProgress
from chat.runner.sink import ErrorLog, JsonlSink, encode_record, errors_path, summary_path, write_json_atomic
from chat.runner.summary import RunSummary

if TYPE_CHECKING:
    from chat.backends.base import UsageLedger

logger = logging.getLogger(__name__)

T = TypeVar("T")
Unit = list[tuple[str, Any]]  # the (id, item) pairs handed to one worker call


class _NotAwaitable(TypeError):
    """The worker returned something that is not awaitable (a plain function instead of `async def`)."""


class TooManyErrors(TurnwiseError):
    """`max_consecutive_errors` items failed in a row: something is wrong for every item."""


def default_item_id(item: Any) -> str:
    """`item["id"]` for mappings, `item.id` otherwise, as a string."""
    value = item["id"] if isinstance(item, Mapping) else getattr(item, "id")
    return value if isinstance(value, str) else str(value)


def _is_fatal(exc: BaseException) -> bool:
    """Errors that every item would hit the same way stop the run instead of filling the error log."""
    return isinstance(exc, (ConfigError, _NotAwaitable))


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _Job:
    """State of one run: pulls units lazily, keeps at most `concurrency` worker calls in flight,
    writes each finished record before counting it."""

    def __init__(self, items: Iterable[Any], call: Callable[[Unit], Awaitable[Sequence[Any]]], *,
                 sink: JsonlSink, error_log: ErrorLog, progress: RunProgress, item_id: Callable[[Any], str],
                 concurrency: int, batch_size: int, batched: bool, limit: int | None, input_name: str,
                 max_consecutive_errors: int | None):
        self.items = items
        self.call = call
        self.sink = sink
        self.error_log = error_log
        self.progress = progress
        self.item_id = item_id
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.batched = batched
        self.limit = limit
        self.input_name = input_name
        self.max_consecutive_errors = max_consecutive_errors
        self.pending: dict[asyncio.Task, Unit] = {}
        self.read = 0
        self.done = 0
        self.skipped = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.exhausted = False
        self.stopping = False
        self.interrupted = False
        self._first_error_logged = False

    # -- input -------------------------------------------------------------------------------
    def units(self) -> Iterator[Unit]:
        """Unfinished items in input order, `batch_size` at a time; ids checked for duplicates."""
        items = iter(self.items) if self.limit is None else itertools.islice(self.items, self.limit)
        first_seen: dict[str, int] = {}
        unit: Unit = []
        for index, item in enumerate(items, 1):
            self.read = index
            key = self._id_of(item, index)
            if key in first_seen:
                raise InputError(self.input_name, None, "id", f"duplicate id {key!r} (items {first_seen[key]} and {index})")
            first_seen[key] = index
            if key in self.sink.finished_ids:
                self.skipped += 1
                continue
            unit.append((key, item))
            if len(unit) >= self.batch_size:
                yield unit
                unit = []
        self.exhausted = True
        if self.progress.total != self.read:
            self.progress.set_total(self.read)
        if unit:
            yield unit

    def _id_of(self, item: Any, index: int) -> str:
        try:
            key = self.item_id(item)
        except (KeyError, AttributeError, TypeError):
            raise InputError(self.input_name, None, "id", f"item {index} has no id") from None
        key = key if isinstance(key, str) else str(key)
        if not key:
            raise InputError(self.input_name, None, "id", f"item {index} has an empty id")
        return key

    # -- scheduling ----------------------------------------------------------------------------
    async def run(self) -> None:
        units = self.units()
        input_error: Exception | None = None
        try:
            while not self.stopping:
                if len(self.pending) >= self.concurrency:
                    await self._wait_first()
                    continue
                try:
                    unit = next(units)
                except StopIteration:
                    break
                except Exception as exc:  # bad input: finish the work in flight, then report it
                    input_error = exc
                    break
                task = asyncio.create_task(self.call(unit), name=f"turnwise-item-{unit[0][0]}")
                self.pending[task] = unit
            while self.pending:
                await self._wait_first()
        except BaseException:
            await self._abandon_pending()
            raise
        if input_error is not None:
            raise input_error

    async def _wait_first(self) -> None:
        finished, _ = await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            self._finish(task, self.pending.pop(task))

    async def _abandon_pending(self) -> None:
        """After a fatal error: cancel what is in flight, keep results that were already complete."""
        tasks = list(self.pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            unit = self.pending.pop(task)
            if task.cancelled() or task.exception() is not None:
                continue
            with contextlib.suppress(Exception):
                self._write(unit, task.result())

    def request_stop(self) -> None:
        """First Ctrl-C: take no new items; the ones in flight finish and are written."""
        if not self.stopping:
            logger.warning("interrupted: finishing %d items in flight (Ctrl-C again to abandon them)", len(self.pending))
        self.stopping = True
        self.interrupted = True

    def request_cancel(self) -> None:
        """Second Ctrl-C: abandon the items in flight (they are redone by the next run)."""
        self.request_stop()
        logger.warning("interrupted again: abandoning %d items in flight", len(self.pending))
        for task in self.pending:
            task.cancel()

    # -- results -------------------------------------------------------------------------------
    def _finish(self, task: asyncio.Task, unit: Unit) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if _is_fatal(exc):
                raise exc
            for key, _ in unit:
                self._fail(key, exc)
            return
        self._write(unit, task.result())

    def _write(self, unit: Unit, records: Any) -> None:
        if self.batched:
            if not isinstance(records, (list, tuple)) or len(records) != len(unit):
                got = f"{len(records)} records" if isinstance(records, (list, tuple)) else type(records).__name__
                raise ValueError(f"batch_worker returned {got} for a batch of {len(unit)} items; return one record per item, in order")
        else:
            records = [records]
        for (key, _), record in zip(unit, records):
            if isinstance(record, Exception) and self.batched:
                self._fail(key, record)
                continue
            if not isinstance(record, dict):
                raise TypeError(f"worker returned {type(record).__name__} for item {key!r}; it must return a record dict")
            if "id" not in record:
                record = {"id": key, **record}
            elif str(record["id"]) != key:
                raise ValueError(f"worker returned a record with id {record['id']!r} for item {key!r}; "
                                 "the record id must be the item id (omit it and the runner sets it)")
            try:
                line = encode_record(record)
            except ValueError as exc:  # NaN or broken Unicode in this one record
                self._fail(key, exc)
                continue
            self.sink.append(key, line)
            self.done += 1
            self.consecutive_errors = 0
            self.progress.advance(done=1)

    def _fail(self, key: str, exc: BaseException) -> None:
        self.error_log.append(key, _describe(exc))
        self.errors += 1
        self.consecutive_errors += 1
        self.progress.advance(errors=1)
        if not self._first_error_logged:
            self._first_error_logged = True
            logger.warning("item %r failed: %s (failures go to %s)", key, _describe(exc), self.error_log.path)
        else:
            logger.debug("item %r failed: %s", key, _describe(exc), exc_info=exc)
        if self.max_consecutive_errors is not None and self.consecutive_errors >= self.max_consecutive_errors:
            raise TooManyErrors(f"{self.consecutive_errors} items failed in a row, the last with {_describe(exc)}; "
                                f"see {self.error_log.path}")


@contextlib.contextmanager
def _ctrl_c_handling(job: _Job, enabled: bool) -> Iterator[None]:
    """While the job runs: first SIGINT stops taking items, the second abandons those in flight,
    after that the previous handler is back (a third Ctrl-C raises KeyboardInterrupt)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    presses = 0
    installed = False

    def restore() -> None:
        nonlocal installed
        if installed:
            installed = False
            loop.remove_signal_handler(signal.SIGINT)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            job.request_stop()
        else:
            job.request_cancel()
            restore()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        logger.debug("SIGINT handler not installed; Ctrl-C raises KeyboardInterrupt")
    try:
        yield
    finally:
        restore()


def _known_total(items: Iterable[Any], limit: int | None, total: int | None) -> int | None:
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            return None
    return total if limit is None else min(total, limit)


async def run_jobs(items: Iterable[T], worker: Callable[[T], Awaitable[dict]] | None, output: str | Path, *,
                   item_id: Callable[[T], str] = default_item_id,
                   concurrency: int = 8,
                   batch_worker: Callable[[list[T]], Awaitable[list[dict]]] | None = None, batch_size: int = 1,
                   ledger: "UsageLedger | None" = None, counters: Counter | None = None,
                   description: str = "", progress: bool = True, limit: int | None = None,
                   total: int | None = None, input_name: str = "input", fsync_every: int = 100,
                   handle_sigint: bool = True, max_consecutive_errors: int | None = None,
                   progress_log_every_s: float = 30.0) -> RunSummary:
    """Run `worker` over every item whose id is not yet in `output`; append each record as it completes.

    Exactly one of `worker` (item -> record dict) and `batch_worker` (list of up to `batch_size`
    items -> one record per item, same order; an Exception in place of a record fails that item)
    is given. At most `concurrency` worker calls are in flight (a batch is one call); items are
    pulled lazily. A record without "id" gets the item id; a different id is an error.

    An item whose worker raises (after the backends' own retries) goes to `<output>.errors.jsonl`
    and stays unfinished, so the next run retries it; a ConfigError stops the run at once (raised).
    A duplicate id in the input raises InputError naming it. `limit` considers only the first
    `limit` input items. `total` tells the progress bar how many items a lazy input holds;
    `input_name` names the input in errors. `max_consecutive_errors` (off by default) stops the
    run with TooManyErrors after that many failures in a row.

    Ctrl-C (when `handle_sigint` and on the main thread): the first stops taking new items and
    lets those in flight finish; the second abandons them. Either way the run returns normally
    with `interrupted=True`. The summary is written to `<output>.summary.json` in every case.
    """
    if (worker is None) == (batch_worker is None):
        raise TypeError("run_jobs needs exactly one of worker and batch_worker")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be 0 or more, got {limit}")
    if worker is not None and batch_size != 1:
        raise TypeError("batch_size needs a batch_worker")

    async def call(unit: Unit) -> Any:
        pending = batch_worker([item for _, item in unit]) if batch_worker is not None else worker(unit[0][1])
        if not inspect.isawaitable(pending):
            raise _NotAwaitable(f"the {'batch_worker' if batch_worker is not None else 'worker'} returned "
                                f"{type(pending).__name__}, not an awaitable; define it with `async def`")
        return await pending

    output = Path(output)
    started = time.monotonic()
    known_total = _known_total(items, limit, total)
    with JsonlSink(output, fsync_every=fsync_every) as sink, ErrorLog(errors_path(output), sink.finished_ids) as error_log:
        bar = RunProgress(total=known_total, already_done=len(sink.finished_ids), description=description,
                          ledger=ledger, enabled=progress, log_every_s=progress_log_every_s)
        job = _Job(items, call, sink=sink, error_log=error_log, progress=bar, item_id=item_id,
                   concurrency=concurrency, batch_size=batch_size, batched=batch_worker is not None,
                   limit=limit, input_name=input_name, max_consecutive_errors=max_consecutive_errors)
        fatal: BaseException | None = None
        try:
            with bar, _ctrl_c_handling(job, handle_sigint):
                await job.run()
        except BaseException as exc:
            fatal = exc
            raise
        finally:
            try:
                sink.sync()
            except ConfigError:
                if fatal is None:
                    raise
            count = job.read if job.exhausted or known_total is None else known_total
            summary = RunSummary(
                output=str(output), total=count, done=job.done, skipped_existing=job.skipped, errors=job.errors,
                interrupted=job.interrupted, elapsed_s=round(time.monotonic() - started, 3),
                usage=ledger.to_dict() if ledger is not None else {},
                extra=dict(sorted(counters.items())) if counters else {}, description=description)
            record = summary.to_dict()
            record["errors_output"] = str(error_log.path)
            if fatal is not None:
                record["stopped_by"] = _describe(fatal)
            # a run stopped by bad input before its first record leaves no files behind
            if not (isinstance(fatal, InputError) and sink.created_empty):
                try:
                    write_json_atomic(summary_path(output), record)
                except ConfigError:
                    if fatal is None:
                        raise
                    logger.debug("summary of the stopped run not written", exc_info=True)
    return summary


def run(items: Iterable[T], worker: Callable[[T], Awaitable[dict]] | None, output: str | Path,
        **kwargs: Any) -> RunSummary:
    """Synchronous entry point: `asyncio.run(run_jobs(...))` with Ctrl-C handled as in `run_jobs`.

    An interrupted run returns its summary with `interrupted=True`; the CLI then exits with 130.
    """
    return asyncio.run(run_jobs(items, worker, output, **kwargs))
