"""run_jobs / run: resume, failures, duplicates, batches, concurrency, limit, summary, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from chat.backends.base import Completion, UsageLedger
from chat.errors import ConfigError, InputError
from chat.runner import (RunSummary, TooManyErrors, errors_path, format_summary, read_records, run, run_jobs,
                         summary_path)


def items(n: int) -> list[dict]:
    return [{"id": f"i{k:03d}", "n": k} for k in range(n)]


async def square(item: dict) -> dict:
    await asyncio.sleep(0)
    return {"square": item["n"] ** 2}


def ids_in(path) -> list[str]:
    return [record["id"] for record in read_records(path)]


def test_every_item_gets_one_record_with_its_id(tmp_path):
    out = tmp_path / "out.jsonl"
    summary = run(items(20), square, out, concurrency=4, progress=False)
    records = read_records(out)
    assert sorted(r["id"] for r in records) == [f"i{k:03d}" for k in range(20)]
    assert all(r["square"] == int(r["id"][1:]) ** 2 for r in records)
    assert (summary.total, summary.done, summary.skipped_existing, summary.errors, summary.interrupted) == (20, 20, 0, 0, False)


def test_resume_skips_finished_ids(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps({"id": f"i{k:03d}", "square": -1}) + "\n" for k in (1, 3, 5)), encoding="utf-8")
    seen: list[str] = []

    async def worker(item: dict) -> dict:
        seen.append(item["id"])
        return await square(item)

    summary = run(items(8), worker, out, progress=False)
    assert sorted(seen) == ["i000", "i002", "i004", "i006", "i007"]
    assert (summary.done, summary.skipped_existing) == (5, 3)
    assert sorted(ids_in(out)) == [f"i{k:03d}" for k in range(8)]
    assert run(items(8), worker, out, progress=False).done == 0 and len(seen) == 5


def test_torn_last_line_is_dropped_and_its_item_redone(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "i000", "square": 0}\n{"id": "i001", "squ', encoding="utf-8")
    summary = run(items(3), square, out, progress=False)
    assert (summary.done, summary.skipped_existing) == (2, 1)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["i000", "i001", "i002"]


def test_failures_go_to_the_error_log_and_are_retried_next_run(tmp_path):
    out = tmp_path / "out.jsonl"

    async def flaky(item: dict) -> dict:
        if item["n"] % 3 == 0:
            raise RuntimeError(f"boom {item['id']}")
        return await square(item)

    first = run(items(9), flaky, out, progress=False)
    assert (first.done, first.errors) == (6, 3)
    entries = [json.loads(line) for line in errors_path(out).read_text(encoding="utf-8").splitlines()]
    assert sorted(e["id"] for e in entries) == ["i000", "i003", "i006"]
    assert {e["error"] for e in entries} == {f"RuntimeError: boom {i}" for i in ("i000", "i003", "i006")}
    assert all(set(e) == {"id", "error", "time"} for e in entries)
    assert "i000" not in ids_in(out)

    second = run(items(9), square, out, progress=False)
    assert (second.done, second.skipped_existing, second.errors) == (3, 6, 0)
    assert sorted(ids_in(out)) == [f"i{k:03d}" for k in range(9)]
    assert not errors_path(out).exists()


def test_a_config_error_stops_the_run_and_is_raised(tmp_path):
    out = tmp_path / "out.jsonl"
    calls = 0

    async def misconfigured(item: dict) -> dict:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ConfigError("backend 'judge' is not defined")

    with pytest.raises(ConfigError, match="not defined"):
        run(items(100), misconfigured, out, concurrency=4, progress=False)
    assert calls <= 8
    assert not errors_path(out).exists()
    summary = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert summary["stopped_by"] == "ConfigError: backend 'judge' is not defined"


def test_duplicate_input_ids_are_rejected_naming_the_id(tmp_path):
    rows = items(4) + [{"id": "i002", "n": 2}]
    with pytest.raises(InputError, match=r"^input: id: duplicate id 'i002' \(items 3 and 5\)$"):
        run(rows, square, tmp_path / "out.jsonl", progress=False)
    # the finished items were written; a rerun (first occurrence now skipped) still rejects the duplicate
    assert sorted(ids_in(tmp_path / "out.jsonl")) == ["i000", "i001", "i002", "i003"]
    with pytest.raises(InputError, match="duplicate id 'i002'"):
        run(rows, square, tmp_path / "out.jsonl", progress=False, input_name="pairs.jsonl")


def test_an_item_without_id_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"^data\.jsonl: id: item 2 has no id$"):
        run([{"id": "a"}, {"text": "x"}], square, tmp_path / "out.jsonl", progress=False, input_name="data.jsonl")


def test_items_may_be_objects_with_an_id_attribute(tmp_path):
    @dataclass
    class Item:
        id: str
        n: int

    run([Item("a", 2), Item("b", 3)], lambda item: square({"n": item.n}), tmp_path / "out.jsonl", progress=False)
    assert sorted((r["id"], r["square"]) for r in read_records(tmp_path / "out.jsonl")) == [("a", 4), ("b", 9)]


def test_batch_worker_gets_batches_of_unfinished_items_in_order(tmp_path):
    out = tmp_path / "out.jsonl"
    batches: list[list[str]] = []

    async def score_batch(batch: list[dict]) -> list[dict]:
        batches.append([item["id"] for item in batch])
        return [{"score": item["n"] / 10} for item in batch]

    run(items(10)[:4], None, out, batch_worker=score_batch, batch_size=3, concurrency=1, progress=False)
    assert batches == [["i000", "i001", "i002"], ["i003"]]
    batches.clear()
    summary = run(items(10), None, out, batch_worker=score_batch, batch_size=3, concurrency=1, progress=False)
    assert batches == [["i004", "i005", "i006"], ["i007", "i008", "i009"]]
    assert (summary.done, summary.skipped_existing) == (6, 4)
    assert {r["id"]: r["score"] for r in read_records(out)} == {f"i{k:03d}": k / 10 for k in range(10)}


def test_batch_worker_may_fail_single_items_with_an_exception(tmp_path):
    out = tmp_path / "out.jsonl"

    async def score_batch(batch: list[dict]) -> list:
        return [ValueError("too long") if item["n"] == 1 else {"score": 1.0} for item in batch]

    summary = run(items(3), None, out, batch_worker=score_batch, batch_size=3, progress=False)
    assert (summary.done, summary.errors) == (2, 1)
    assert json.loads(errors_path(out).read_text(encoding="utf-8"))["error"] == "ValueError: too long"


def test_a_failing_batch_fails_each_of_its_items(tmp_path):
    out = tmp_path / "out.jsonl"

    async def broken(batch: list[dict]) -> list[dict]:
        raise TimeoutError("server hung")

    summary = run(items(5), None, out, batch_worker=broken, batch_size=2, progress=False)
    assert (summary.done, summary.errors) == (0, 5)
    assert len(errors_path(out).read_text(encoding="utf-8").splitlines()) == 5


def test_batch_worker_returning_the_wrong_number_of_records_is_a_bug(tmp_path):
    async def short(batch: list[dict]) -> list[dict]:
        return [{}]

    with pytest.raises(ValueError, match="returned 1 records for a batch of 2 items"):
        run(items(4), None, tmp_path / "out.jsonl", batch_worker=short, batch_size=2, progress=False)


def test_exactly_one_kind_of_worker_is_required(tmp_path):
    with pytest.raises(TypeError):
        run(items(1), None, tmp_path / "out.jsonl")
    with pytest.raises(TypeError):
        run(items(1), square, tmp_path / "out.jsonl", batch_worker=square)


def test_a_record_with_another_id_is_a_bug(tmp_path):
    async def renaming(item: dict) -> dict:
        return {"id": "other"}

    with pytest.raises(ValueError, match="record with id 'other' for item 'i000'"):
        run(items(1), renaming, tmp_path / "out.jsonl", progress=False)


def test_a_record_with_nan_fails_only_that_item(tmp_path):
    async def scorer(item: dict) -> dict:
        return {"score": float("nan") if item["n"] == 0 else 1.0}

    summary = run(items(3), scorer, tmp_path / "out.jsonl", progress=False)
    assert (summary.done, summary.errors) == (2, 1)


def test_concurrency_limit_is_reached_and_never_exceeded(tmp_path):
    active = peak = 0

    async def slow(item: dict) -> dict:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        active -= 1
        return {}

    run(items(30), slow, tmp_path / "out.jsonl", concurrency=3, progress=False)
    assert peak == 3


def test_items_are_pulled_lazily(tmp_path):
    pulled = finished = 0

    def generate():
        nonlocal pulled
        for item in items(50):
            pulled += 1
            yield item

    async def worker(item: dict) -> dict:
        nonlocal finished
        assert pulled - finished <= 2  # at most `concurrency` items taken but not finished
        await asyncio.sleep(0.001)
        finished += 1
        return {}

    summary = run(generate(), worker, tmp_path / "out.jsonl", concurrency=2, progress=False)
    assert summary.total == 50 and summary.done == 50


def test_limit_considers_only_the_first_items_and_reads_no_further(tmp_path):
    out = tmp_path / "out.jsonl"
    pulled = 0

    def generate():
        nonlocal pulled
        for item in items(10):
            pulled += 1
            yield item

    summary = run(generate(), square, out, limit=4, progress=False)
    assert pulled == 4 and summary.total == 4 and summary.pending == 0
    assert sorted(ids_in(out)) == ["i000", "i001", "i002", "i003"]
    summary = run(items(10), square, out, limit=6, progress=False)
    assert (summary.total, summary.done, summary.skipped_existing) == (6, 2, 4)


def test_summary_file_holds_counts_usage_and_counters(tmp_path):
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl").write_text('{"id": "i000"}\n', encoding="utf-8")
    ledger = UsageLedger()
    counters: Counter = Counter()

    async def judge(item: dict) -> dict:
        if item["n"] == 3:
            raise RuntimeError("unparseable verdict")
        ledger.record("judge", Completion("A", "stop", {"prompt_tokens": 10, "completion_tokens": 2}), time.monotonic())
        counters["ties" if item["n"] % 2 else "wins"] += 1
        return {"winner": "A"}

    returned = run(items(5), judge, out, ledger=ledger, counters=counters, description="judge pairs", progress=False)
    written = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert written == {**returned.to_dict(), "errors_output": str(errors_path(out))}
    assert {k: written[k] for k in ("output", "total", "done", "skipped_existing", "errors", "interrupted", "pending")} == {
        "output": str(out), "total": 5, "done": 3, "skipped_existing": 1, "errors": 1, "interrupted": False, "pending": 1}
    assert written["usage"]["total"]["calls"] == 3 and written["usage"]["total"]["prompt_tokens"] == 30
    assert written["usage"]["by_role"]["judge"]["completion_tokens"] == 6
    assert written["extra"] == {"ties": 1, "wins": 2}
    assert written["description"] == "judge pairs" and written["elapsed_s"] >= 0
    text = format_summary(returned)
    assert "3 new records, 1 already done, 1 failed, 1 pending of 5" in text
    assert "3 calls" in text and "ties=1, wins=2" in text and str(errors_path(out)) in text


def test_run_summary_to_dict_has_the_fields_of_the_api():
    summary = RunSummary(output="o", total=3, done=1, skipped_existing=1, errors=1, interrupted=True,
                         elapsed_s=1.0, usage={}, extra={"x": 1})
    assert set(summary.to_dict()) >= {"output", "total", "done", "skipped_existing", "errors", "interrupted",
                                      "elapsed_s", "usage", "extra"}
    assert "interrupted" in format_summary(summary)
    assert summary.exit_code == 130 and summary.pending == 1


def test_max_consecutive_errors_stops_a_run_that_fails_everywhere(tmp_path):
    async def down(item: dict) -> dict:
        raise ConnectionError("connection refused")

    with pytest.raises(TooManyErrors, match="5 items failed in a row"):
        run(items(100), down, tmp_path / "out.jsonl", concurrency=1, max_consecutive_errors=5, progress=False)
    assert len(errors_path(tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 5


def test_bad_arguments_are_config_errors(tmp_path):
    for kwargs in ({"concurrency": 0}, {"limit": -1}):
        with pytest.raises(ConfigError):
            run(items(1), square, tmp_path / "out.jsonl", **kwargs)


def test_first_ctrl_c_finishes_items_in_flight_and_returns_interrupted(tmp_path):
    out = tmp_path / "out.jsonl"
    started: list[str] = []
    handler_before = signal.getsignal(signal.SIGINT)  # default, or SIG_IGN when pytest runs in the background

    async def worker(item: dict) -> dict:
        started.append(item["id"])
        if item["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.02)
        return {}

    summary = run(items(50), worker, out, concurrency=4, progress=False)
    assert summary.interrupted and summary.errors == 0
    assert sorted(ids_in(out)) == sorted(started) and 6 <= len(started) < 50
    assert json.loads(summary_path(out).read_text(encoding="utf-8"))["interrupted"] is True
    assert signal.getsignal(signal.SIGINT) is handler_before
    rest = run(items(50), worker, out, concurrency=4, progress=False)
    assert not rest.interrupted and sorted(ids_in(out)) == [f"i{k:03d}" for k in range(50)]


def test_second_ctrl_c_abandons_items_in_flight(tmp_path):
    out = tmp_path / "out.jsonl"

    async def worker(item: dict) -> dict:
        if item["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0 if item["n"] < 2 else 5)
        return {}

    began = time.monotonic()
    summary = run(items(10), worker, out, concurrency=4, progress=False)
    assert time.monotonic() - began < 2
    assert summary.interrupted and sorted(ids_in(out)) == ["i000", "i001"]


def test_run_jobs_can_be_awaited_inside_a_running_loop(tmp_path):
    async def main() -> RunSummary:
        return await run_jobs(items(5), square, tmp_path / "out.jsonl", progress=False)

    assert asyncio.run(main()).done == 5


def test_a_plain_function_worker_stops_the_run_at_once(tmp_path):
    def not_async(item: dict) -> dict:
        return {}

    with pytest.raises(TypeError, match="define it with `async def`"):
        run(items(20), not_async, tmp_path / "out.jsonl", progress=False)
    assert not errors_path(tmp_path / "out.jsonl").exists()


def test_an_output_that_cannot_be_written_is_a_config_error(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="cannot write the output"):
        run(items(1), square, tmp_path / "taken", progress=False)
