"""bench/run_all and its table: record() rows, rendering, parsing, merging, running jobs (tiny fake scripts)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import RESULTS_ENV, record  # noqa: E402
from bench.results_table import (COLUMNS, TableRow, format_ratio, merge_rows, parse_table,  # noqa: E402
                                 render_table, row_from_record, status_row)
from chat.errors import InputError, TurnwiseError  # noqa: E402


def load_run_all():
    loader = importlib.machinery.SourceFileLoader("bench_run_all", str(REPO_ROOT / "bench" / "run_all"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_run_all", loader))
    sys.modules["bench_run_all"] = module
    loader.exec_module(module)
    return module


run_all = load_run_all()


def make_row(job: str, benchmark: str, ratio: str = "2.00x", measured: str = "2026-11-20") -> TableRow:
    return TableRow(job, benchmark, "baseline", ratio, ">= 1.5x", "yes", "2 cores", measured, f"python bench/{job}.py")


# --- record() ------------------------------------------------------------------------------------------------------

def test_record_appends_one_json_row_per_call(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    record("a vs b", baseline="b", ratio=2.5, target=">= 2x", met=True, details={"summary": "10 vs 4 s"})
    record("accuracy", baseline="fp32", ratio=-1.35, target="<= 1 point", met=False, unit="points")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["benchmark"], r["ratio"], r["unit"], r["met"]) for r in rows] == [
        ("a vs b", 2.5, "x", True), ("accuracy", -1.35, "points", False)]
    assert rows[0]["details"] == {"summary": "10 vs 4 s"} and "cores" in rows[0]["machine"]


def test_record_without_the_environment_variable_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record("a vs b", baseline="b", ratio=1.0, target="none", met=None)
    assert list(tmp_path.iterdir()) == []


# --- rendering and parsing -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio, unit, summary, shown", [
    (5.0612, "x", "139.8 vs 27.6 tok/s", "5.06x (139.8 vs 27.6 tok/s)"),
    (0.99500, "x", "", "0.995x"),
    (0.0, "x", "", "0.00x"),
    (2.0345, "points", "", "+2.03 points"),
    (-1.3514, "points", "", "-1.35 points"),
    (14.8, "calls per item", "", "14.8 calls per item"),
    (None, "accuracy", "0 parsed", "n.a. (0 parsed)"),
])
def test_format_ratio_shows_the_unit_and_the_summary(ratio, unit, summary, shown):
    assert format_ratio(ratio, unit, summary) == shown


def test_row_from_record_formats_met_and_keeps_the_command():
    result = {"benchmark": "b", "baseline": "base", "ratio": 1.2, "unit": "x", "target": "none", "met": None,
              "machine": "m", "details": {"summary": "s"}}
    row = row_from_record("job", result, measured="2026-11-21", command="python bench/x.py --n 1")
    assert row == TableRow("job", "b", "base", "1.20x (s)", "none", "n.a.", "m", "2026-11-21",
                           "python bench/x.py --n 1")


def test_rendered_table_parses_back_to_the_same_rows_with_pipes_and_code():
    rows = [make_row("a", "max |difference| 1e-6"), make_row("b", "plain", ratio="n.a. (x | y)")]
    text = "# Title\n\nprose | with a pipe\n\n" + render_table(rows) + "\n## Notes\n"
    assert "`python bench/a.py`" in text and "max \\|difference\\|" in text
    assert parse_table(text) == rows


def test_parse_table_reads_only_the_results_table():
    other = "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    assert parse_table(other + render_table([make_row("a", "x")])) == [make_row("a", "x")]
    assert parse_table(other) == []


def test_parse_table_names_file_and_line_of_a_broken_row():
    text = render_table([make_row("a", "x")]) + "| only | three | cells |\n"
    with pytest.raises(InputError) as error:
        parse_table(text, "bench/RESULTS.md")
    assert str(error.value).startswith(f"bench/RESULTS.md:4: table row: 3 cells, expected {len(COLUMNS)}")


# --- merging -------------------------------------------------------------------------------------------------------

def test_merge_replaces_the_rows_of_jobs_that_ran_and_keeps_the_others_in_plan_order():
    existing = [make_row("b", "b1"), make_row("a", "a1"), make_row("a", "a2"), make_row("gone", "old job")]
    fresh = {"a": [make_row("a", "a-new", measured="2026-11-21")]}
    merged = merge_rows(existing, fresh, ["a", "b", "c"])
    assert [(r.job, r.benchmark) for r in merged] == [("a", "a-new"), ("b", "b1"), ("gone", "old job")]


def test_merge_keeps_old_numbers_of_a_failed_job_and_replaces_its_old_status_row():
    failed = status_row("a", "title", "failed", "exit code 1: boom", machine="m", measured="2026-11-21", command="c")
    older_failure = status_row("a", "title", "skipped", "missing x", machine="m", measured="2026-11-20", command="c")
    merged = merge_rows([make_row("a", "a1"), older_failure], {"a": [failed]}, ["a"])
    assert merged == [make_row("a", "a1"), failed]
    assert failed.is_status and not make_row("a", "a1").is_status


# --- the plan and running jobs ---------------------------------------------------------------------------------------

def test_plan_names_are_unique_and_every_script_exists():
    names = [job.name for job in run_all.PLAN]
    assert len(names) == len(set(names))
    assert all((REPO_ROOT / "bench" / job.script).is_file() for job in run_all.PLAN)


def test_select_jobs_by_substring_or_glob():
    plan = tuple(run_all.Job(name, name, "x.py", args=(), minutes=1) for name in ("rm_a", "judge_rm_b", "gen_c"))
    assert [j.name for j in run_all.select_jobs(plan, ["rm_"])] == ["rm_a", "judge_rm_b"]
    assert [j.name for j in run_all.select_jobs(plan, ["rm_*"])] == ["rm_a"]
    assert [j.name for j in run_all.select_jobs(plan, None)] == ["rm_a", "judge_rm_b", "gen_c"]
    with pytest.raises(TurnwiseError, match="no job matches"):
        run_all.select_jobs(plan, ["nothing"])


def write_script(directory: Path, name: str, body: str) -> None:
    header = f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\nfrom bench.results import record\n"
    (directory / name).write_text(header + textwrap.dedent(body))


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """A bench folder with three tiny scripts: one records two rows (and honours --quick-size), one fails, one
    records nothing."""
    bench = tmp_path / "bench"
    bench.mkdir()
    write_script(bench, "good.py", """
        size = sys.argv[sys.argv.index("--size") + 1]
        print("measuring", size)
        record(f"good vs base, size {size}", baseline="base", ratio=2.0, target=">= 1.5x", met=True)
        record("good accuracy", baseline="base", ratio=0.5, target="within 1 point", met=True, unit="points")
    """)
    write_script(bench, "bad.py", """
        print("loading")
        raise SystemExit("bad.py: the model is missing")
    """)
    write_script(bench, "silent.py", "print('no record call')\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", bench)
    return tmp_path


def test_run_job_turns_recorded_rows_into_table_rows(fake_bench):
    job = run_all.Job("good", "good title", "good.py", args=("--size", "100"), minutes=1,
                      quick_args=("--size", "10"))
    outcome = run_all.run_job(job, quick=True, workdir=fake_bench / "work", measured="2026-11-21 **quick**")
    assert outcome.status == "ok"
    assert [(r.benchmark, r.ratio, r.met, r.measured) for r in outcome.rows] == [
        ("good vs base, size 10", "2.00x", "yes", "2026-11-21 **quick**"),
        ("good accuracy", "+0.50 points", "yes", "2026-11-21 **quick**")]
    assert outcome.rows[0].command.endswith("bench/good.py --size 10")


@pytest.mark.parametrize("script, reason", [
    ("bad.py", "exit code 1: bad.py: the model is missing"),
    ("silent.py", "the script ran but recorded no result"),
])
def test_a_failing_job_becomes_a_failed_row(fake_bench, script, reason):
    job = run_all.Job("bad", "bad title", script, args=(), minutes=1)
    outcome = run_all.run_job(job, quick=False, workdir=fake_bench / "work", measured="2026-11-21")
    assert outcome.status == "failed"
    assert [(r.job, r.benchmark, r.met) for r in outcome.rows] == [("bad", "bad title", "n.a.")]
    assert outcome.rows[0].ratio.startswith(f"**failed**: {reason}")


def test_a_job_with_a_missing_prerequisite_is_skipped_without_running(fake_bench):
    missing = fake_bench / "runs" / "rm" / "config.json"
    job = run_all.Job("needs_rm", "title", "bad.py", args=(), minutes=1,
                      needs=(run_all.Need(str(missing), "train it"),))
    outcome = run_all.run_job(job, quick=False, workdir=fake_bench / "work", measured="2026-11-21")
    assert outcome.status == "skipped"
    assert outcome.rows[0].ratio == f"**skipped**: missing {missing} (train it)"


def test_main_with_only_updates_only_the_selected_rows(fake_bench, monkeypatch):
    plan = (run_all.Job("good", "good title", "good.py", args=("--size", "100"), minutes=1),
            run_all.Job("bad", "bad title", "bad.py", args=(), minutes=1),
            run_all.Job("other", "other title", "silent.py", args=(), minutes=1))
    monkeypatch.setattr(run_all, "PLAN", plan)
    output = fake_bench / "RESULTS.md"
    old = [make_row("good", "old good"), make_row("bad", "old bad"), make_row("other", "old other")]
    output.write_text("# Benchmark results\n\n" + render_table(old))

    assert run_all.main(["--only", "good", "bad", "--output", str(output)]) == 1  # bad failed
    rows = parse_table(output.read_text())
    assert [(r.job, r.benchmark) for r in rows] == [
        ("good", "good vs base, size 100"), ("good", "good accuracy"),
        ("bad", "old bad"), ("bad", "bad title"), ("other", "old other")]
    text = output.read_text()
    assert text.startswith("# Benchmark results\n\nGenerated by `bench/run_all --only good bad --output ")
    assert "## Notes" in text and "NOTES.md" in text


def test_rows_that_another_run_wrote_meanwhile_are_kept(fake_bench, monkeypatch):
    plan = (run_all.Job("good", "good title", "good.py", args=("--size", "100"), minutes=1),
            run_all.Job("other", "other title", "silent.py", args=(), minutes=1))
    monkeypatch.setattr(run_all, "PLAN", plan)
    output = fake_bench / "RESULTS.md"
    output.write_text("# Benchmark results\n\n" + render_table([make_row("good", "old good")]))
    real_run_job = run_all.run_job

    def run_job_while_another_run_writes(job, **options):
        outcome = real_run_job(job, **options)
        # a second bench/run_all (say --only other) finishes while this job runs
        output.write_text("# Benchmark results\n\n" + render_table([make_row("good", "old good"),
                                                                    make_row("other", "fresh other")]))
        return outcome

    monkeypatch.setattr(run_all, "run_job", run_job_while_another_run_writes)
    assert run_all.main(["--only", "good", "--output", str(output)]) == 0
    assert [(r.job, r.benchmark) for r in parse_table(output.read_text())] == [
        ("good", "good vs base, size 100"), ("good", "good accuracy"), ("other", "fresh other")]
