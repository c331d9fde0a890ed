"""`turnwise data inspect`'s summary: turns histogram, length statistics, final-turn-only share, invalid rows."""

from __future__ import annotations

from app.data_cli import render_summary
from chat.formats.summary import length_stats, summarize_dataset
from formats_helpers import write_rows

USER = {"role": "user", "content": "one two three"}


def test_length_stats_are_min_mean_median_max():
    assert length_stats([1, 2, 3, 10]) == {"min": 1, "mean": 4.0, "median": 2.5, "max": 10}
    assert length_stats([]) == {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}


def test_pair_summary_counts_turns_lengths_and_final_turn_only_pairs(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [
        {"chosen": [USER, {"role": "assistant", "content": "yes"}], "rejected": [USER, {"role": "assistant", "content": "no no"}]},
        {"chosen": [USER, {"role": "assistant", "content": "a"}, USER, {"role": "assistant", "content": "b"}],
         "rejected": [USER, {"role": "assistant", "content": "x"}, USER, {"role": "assistant", "content": "y"}]},
        {"chosen": [USER, {"role": "assistant", "content": ""}], "rejected": [USER, {"role": "assistant", "content": "z"}]},
    ])
    summary = summarize_dataset(path)
    assert (summary["format"], summary["kind"], summary["rows"], summary["records"], summary["invalid_rows"]) == (
        "trl", "pair", 3, 2, 1)
    assert summary["invalid_examples"] == [f"{path}:3: chosen[1].content: empty content"]
    assert summary["turns"] == {"1": 1, "2": 1}
    assert summary["final_turn_only"] == 1 and summary["final_turn_only_share"] == 0.5
    assert summary["chosen_response"]["chars"] == {"min": 1, "mean": 2.0, "median": 2.0, "max": 3}
    assert summary["rejected_response"]["words"]["max"] == 2
    # user turns: chosen's three plus none new on the rejected side (shared prefixes count once)
    assert summary["lengths"]["user"]["words"] == {"min": 3, "mean": 3.0, "median": 3.0, "max": 3}
    assert len(summary["lengths"]["user"]["chars"]) == 4 and summary["lengths"]["assistant"]["chars"]["max"] == 5


def test_summary_limit_reads_only_the_first_rows(tmp_path):
    path = write_rows(tmp_path / "c.jsonl", [{"messages": [USER]}] * 5)
    summary = summarize_dataset(path, limit=2)
    assert (summary["rows"], summary["records"], summary["kind"]) == (2, 2, "conversation")


def test_rendered_summary_shows_histogram_and_invalid_rows(tmp_path):
    path = write_rows(tmp_path / "c.jsonl", [{"messages": [USER]}, {"messages": [{"role": "tool", "content": "x"}]}])
    text = render_summary(summarize_dataset(path, "sharegpt"))
    assert "format:   sharegpt\n" in text and "rows:     2 (1 valid, 1 invalid)" in text
    assert "    1:      1  ########################################" in text
    assert text.endswith(f"invalid rows: 1\n  {path}:2: messages[0].role: unknown role 'tool' "
                         "(expected one of system, user, assistant)")
