"""bench/generate_mimg_quality.py: the judge's two prompts and verdicts, the baseline's parsing, the arm summary."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench import generate_mimg_quality as bench  # noqa: E402
from chat.backends.scripted import ScriptedBackend, parse_reply  # noqa: E402
from generate.documents import Chunk  # noqa: E402
from generate.mimg.steps import MERGE_FORMAT  # noqa: E402

FIRST = Chunk("d1#0", "d1", 0, "Rivers", "The Elbe flows into the North Sea.")
SECOND = Chunk("d1#1", "d1", 1, "Rivers", "Hamburg lies on the Elbe.")


def first_token(token: str, top: dict[str, float]):
    return parse_reply({"text": token, "logprobs": [{"token": token, "logprob": top[token], "top": top}]})


def test_rate_reads_the_expected_grade_and_the_multi_hop_probability_from_the_first_token():
    judge = ScriptedBackend([first_token("7", {"7": math.log(0.5), "9": math.log(0.5)}),
                             first_token("Yes", {"Yes": math.log(0.6), "No": math.log(0.2), "maybe": -1.0})])
    item = {"question": "Which sea does the river of Hamburg flow into?", "answer": "The North Sea.",
            "passages": [FIRST, SECOND]}
    rating = asyncio.run(bench.rate(judge, item))
    assert rating["grade"] == pytest.approx(0.5 * 8 + 0.5 * 10)       # digits 7 and 9 are grades 8 and 10
    assert rating["p_multi_hop"] == pytest.approx(0.75)               # renormalised over Yes / No
    grade_request, hop_request = judge.requests
    assert grade_request.params["max_tokens"] == 1 and grade_request.params["logprobs"] == 20
    assert grade_request.messages[0]["content"] == bench.GRADE_SYSTEM
    assert grade_request.messages[1]["content"] == (
        "Passage 1 (Rivers):\nThe Elbe flows into the North Sea.\n\nPassage 2 (Rivers):\nHamburg lies on the Elbe."
        "\n\nQuestion:\nWhich sea does the river of Hamburg flow into?\n\nAnswer:\nThe North Sea.\n\n"
        + bench.GRADE_ASK)
    assert hop_request.messages[1]["content"].endswith(bench.HOP_ASK)


def test_rate_gives_none_when_no_candidate_token_is_among_the_alternatives():
    judge = ScriptedBackend([first_token("The", {"The": -0.1}), first_token("I", {"I": -0.1})])
    rating = asyncio.run(bench.rate(judge, {"question": "q", "answer": "a", "passages": [FIRST, SECOND]}))
    assert rating == {"grade": None, "p_multi_hop": None}


def test_baseline_items_keep_the_replies_that_parse_and_ask_with_the_merge_schema():
    generator = ScriptedBackend([json.dumps({"question": "Where does Hamburg's river end?", "answer": "North Sea."}),
                                 json.dumps({"question": " ", "answer": "x"})])
    items, calls = asyncio.run(bench.baseline_items(generator, [("indoc", [FIRST, SECOND]),
                                                                ("crossdoc", [SECOND, FIRST])], max_tokens=64))
    assert calls == 2
    assert [(item["id"], item["kind"], item["question"]) for item in items] == [
        ("baseline-0", "indoc", "Where does Hamburg's river end?")]
    assert all(request.params["response_format"] == MERGE_FORMAT for request in generator.requests)
    assert generator.requests[0].messages[0]["content"] == bench.BASELINE_SYSTEM


def test_neighbour_chunk_is_the_next_one_or_the_previous_for_the_last():
    third = Chunk("d1#2", "d1", 2, "Rivers", "c")
    assert bench.neighbour_chunk(FIRST, [FIRST, SECOND, third]) is SECOND
    assert bench.neighbour_chunk(third, [FIRST, SECOND, third]) is SECOND
    assert bench.neighbour_chunk(FIRST, [FIRST]) is None


def test_arm_summary_counts_shares_over_the_items_with_a_verdict():
    summary = bench.arm_summary([{"grade": 8.0, "p_multi_hop": 0.9}, {"grade": 5.0, "p_multi_hop": 0.2},
                                 {"grade": None, "p_multi_hop": 0.7}])
    assert summary["rated"] == 3 and summary["graded"] == 2 and summary["hop_judged"] == 3
    assert summary["high_quality"] == 0.5
    assert summary["multi_hop"] == pytest.approx(2 / 3)
    assert summary["mean_grade"] == 6.5
