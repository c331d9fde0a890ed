"""`augment music` as a resumable job: output files, resume, dropped seeds remembered, every shared seed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from augment_helpers import FakeSimulator, config, fake_backends

from augment.music import music_pair_id
from augment.run import run_music
from chat.runner import seed_log_path
from chat.conversation import PreferencePair
from chat.errors import BackendError, InputError
from chat.formats import read_records
from chat.runner import read_records as read_sink


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w") as file:
        for i in range(n):
            file.write(json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": f"Task number {i}"}]}) + "\n")
    return path


def drop_odd_prompts(messages):
    """A simulator whose user turn is empty for odd-numbered prompts (they get dropped)."""
    prompt = messages[1]["content"]  # the seed's first user turn, shown to the simulator in the assistant role
    number = int(prompt.split("Task number ")[1].split()[0].rstrip("."))
    return "" if number % 2 else "a follow-up question"


def run(tmp_path, simulator=None, n=6, **values):
    backends, backend = fake_backends(simulator)
    source = write_prompts(tmp_path / "prompts.jsonl", n)
    result = run_music(source, tmp_path / "out.jsonl", config(**values), backends=backends, progress=False,
                       handle_sigint=False)
    return result, backend


def test_kept_pairs_are_canonical_and_load_with_the_readers(tmp_path):
    result, _ = run(tmp_path, turns=2)
    pairs = list(read_records(tmp_path / "out.jsonl"))
    assert len(pairs) == 6 == result.kept == result.kept_total
    assert all(isinstance(p, PreferencePair) for p in pairs)
    assert {p.id for p in pairs} == {music_pair_id(f"p{i}") for i in range(6)}
    row = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert set(row) == {"id", "chosen", "rejected", "meta"}


def test_dropped_seeds_go_to_the_seed_log_with_their_reason_not_to_the_output(tmp_path):
    result, _ = run(tmp_path, FakeSimulator(user=drop_odd_prompts), turns=2, divergence="final")
    assert result.kept == 3 and result.dropped == {"empty_turn": 3}
    assert len(list(read_records(tmp_path / "out.jsonl"))) == 3
    log = {row["id"]: row for row in read_sink(seed_log_path(tmp_path / "out.jsonl"))}
    assert len(log) == 6
    assert {k for k, row in log.items() if not row["kept"]} == {"p1", "p3", "p5"}
    assert log["p1"]["dropped"] == "empty_turn" and log["p1"]["detail"]
    assert result.summary.extra["dropped_empty_turn"] == 3 and result.summary.extra["kept"] == 3


def test_a_second_run_redoes_neither_kept_nor_dropped_seeds(tmp_path):
    run(tmp_path, FakeSimulator(user=drop_odd_prompts), turns=2, divergence="final")
    again, backend = run(tmp_path, FakeSimulator(user=drop_odd_prompts), turns=2, divergence="final")
    assert backend.calls == 0
    assert again.summary.skipped_existing == 6 and again.kept == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


def test_a_partial_run_resumes_where_it_stopped_without_duplicates(tmp_path):
    first, _ = run(tmp_path, turns=2, limit=2)
    assert first.kept == 2
    second, _ = run(tmp_path, turns=2)
    assert second.summary.skipped_existing == 2 and second.kept == 4
    ids = [p.id for p in read_records(tmp_path / "out.jsonl")]
    assert len(ids) == len(set(ids)) == 6


def test_a_pair_written_before_its_seed_was_logged_is_not_made_again(tmp_path):
    run(tmp_path, turns=2, n=3)
    log = seed_log_path(tmp_path / "out.jsonl")
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n")  # killed between writing the pair and logging its seed
    again, backend = run(tmp_path, turns=2, n=3)
    assert backend.calls == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert len(read_sink(log)) == 3


def test_a_seed_whose_backend_fails_is_retried_by_the_next_run(tmp_path):
    def failing(messages):
        if "Task number 4" in messages[1]["content"]:
            raise BackendError("server down")
        return "a follow-up question"

    first, _ = run(tmp_path, FakeSimulator(user=failing), turns=2)
    assert first.summary.errors == 1 and first.kept == 5
    second, _ = run(tmp_path, turns=2)
    assert second.kept == 1 and second.summary.skipped_existing == 5
    assert len(list(read_records(tmp_path / "out.jsonl"))) == 6


def test_results_do_not_depend_on_concurrency(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    run(one, n=8, turns=3, concurrency=1, seed=3)
    run(two, n=8, turns=3, concurrency=8, seed=3)

    def by_id(path):
        return {row["id"]: (row["chosen"], row["rejected"], row["meta"]["divergence_turn"])
                for row in read_sink(path / "out.jsonl")}

    assert by_id(one) == by_id(two)


def test_cost_per_kept_pair_counts_the_calls_of_dropped_seeds_too(tmp_path):
    result, backend = run(tmp_path, FakeSimulator(user=drop_odd_prompts), turns=2, divergence="final")
    assert result.counters["llm_calls"] == backend.calls
    assert result.per_kept()["llm_calls"] == pytest.approx(backend.calls / 3)


def test_input_that_is_not_pairs_or_conversations_is_an_input_error(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text(json.dumps({"id": "d1", "content": "some text"}) + "\n")
    backends, _ = fake_backends()
    with pytest.raises(InputError, match="expected preference pairs or conversations"):
        run_music(source, tmp_path / "out.jsonl", config(), backends=backends, progress=False, handle_sigint=False)


def shared_seed_files(root: Path) -> list[Path]:
    """Every shared data file whose records are preference pairs or conversations."""
    from chat.formats import CONVERSATION, FORMATS, PAIR, detect_format

    files = [f for f in sorted(root.rglob("*.json*")) if "LICENSE" not in f.name]
    return [f for f in files if FORMATS.get(detect_format(f)).kind in (PAIR, CONVERSATION)]


def test_every_shared_preference_and_conversation_file_works_as_seed_input(shared_data, tmp_path):
    files = shared_seed_files(shared_data)
    assert sum("preference" in str(f) for f in files) == 33
    for index, source in enumerate(files):
        backends, backend = fake_backends()
        output = tmp_path / f"out{index}.jsonl"
        result = run_music(source, output, config(turns=2, limit=2), backends=backends, progress=False,
                           handle_sigint=False)
        assert result.summary.errors == 0, source
        assert result.kept == 2, source
        pairs = list(read_records(output))
        assert [p.meta["source_id"] for p in pairs] and len(pairs) == 2, source
        for pair in pairs:
            assert pair.chosen.turns == pair.rejected.turns == 2, source


def test_hh_rlhf_invalid_rows_are_skipped_and_counted(shared_data, tmp_path):
    source = shared_data / "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz"
    backends, _ = fake_backends(FakeSimulator(user="", assistant=""))  # drop everything fast: no turn is usable
    result = run_music(source, tmp_path / "out.jsonl", config(turns=1, divergence="final", concurrency=16),
                       backends=backends, progress=False, handle_sigint=False)
    assert result.counters["input_rows_rejected"] == 4
    assert result.summary.done == 1796 - result.counters["seeds_duplicate_id"]


def test_a_run_killed_midway_resumes_without_duplicates(tmp_path):
    import subprocess
    import sys
    import time

    child = Path(__file__).with_name("augment_child.py")
    prompts = write_prompts(tmp_path / "prompts.jsonl", 12)
    output = tmp_path / "out.jsonl"
    command = [sys.executable, str(child), str(prompts), str(output)]
    process = subprocess.Popen([*command, "--delay-s", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = seed_log_path(output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    logged_before = len(read_sink(log))
    assert 3 <= logged_before < 12, "the child finished before it could be killed"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert f"skipped {logged_before}" in finished.stdout
    ids = [p.id for p in read_records(output)]
    assert sorted(ids) == sorted(music_pair_id(f"p{i}") for i in range(12))
    assert len(read_sink(log)) == 12
