"""Judge prompts users bring (FastChat judge_prompts.jsonl, Jinja templates) and FastChat's model_judgment output."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from chat.backends import ScriptedBackend
from chat.conversation import Conversation
from chat.errors import ConfigError
from judge.config import JudgeConfig
from judge.llm import LLMGradeJudge, LLMOptions, LLMPairwiseJudge
from judge.mt_bench_job import mt_bench_job
from judge.parsing import VerdictParseError
from judge.user_prompts import load_judge_prompt, parse_fastchat_rating, parse_two_scores

SHARED = Path(os.environ.get("TURNWISE_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
MT_BENCH = SHARED / "mt_bench"
PROMPTS = MT_BENCH / "judge_prompts.jsonl"
needs_mt_bench = pytest.mark.skipif(not PROMPTS.is_file(), reason=f"FastChat judge prompts not found at {PROMPTS}")


def conversation(*turns: str, id: str = "c") -> Conversation:
    roles = ["user", "assistant"] * len(turns)
    return Conversation.from_messages([{"role": r, "content": t} for r, t in zip(roles, turns)], id=id)


ONE_A = conversation("What is 2+2?", "4", id="a")
ONE_B = conversation("What is 2+2?", "It is 5.", id="b")
TWO_A = conversation("Name a fruit.", "Apple.", "Another?", "Pear.", id="a2")
TWO_B = conversation("Name a fruit.", "Rock.", "Another?", "Stone.", id="b2")


# ----------------------------------------------------------------------------- output formats

@pytest.mark.parametrize("text, winner", [("[[8, 3]]", "A"), ("[[2.5,7]]", "B"), ("[[6, 6.05]]", "tie"),
                                          ("scores [4, 9]", "B")])
def test_two_score_format_follows_fastchat(text, winner):
    assert parse_two_scores(text) == winner


@pytest.mark.parametrize("text, rating", [("Rating: [[7]]", 7.0), ("Rating: [6]", 6.0), ("[[8.5]]", 8.5)])
def test_rating_format_reads_fastchat_backup_pattern(text, rating):
    assert parse_fastchat_rating(text) == rating


@pytest.mark.parametrize("text", ["no score", "[3] and [4]", "[[3]] [[9]]"])
def test_rating_format_never_guesses(text):
    with pytest.raises(VerdictParseError):
        parse_fastchat_rating(text)


# ----------------------------------------------------------------------------- Jinja templates

def test_jinja_pairwise_prompt_renders_documented_variables(tmp_path):
    template = tmp_path / "my-judge.jinja"
    template.write_text('{% set system_prompt = "Be fair." %}\n'
                        "Q: {{ question }}\nA: {{ answer_a }}\nB: {{ answer_b }}\n"
                        "{% for m in conversation_a %}{{ m.turn }}:{{ m.role }} {% endfor %}\nVerdict as [[A]]/[[B]]/[[C]].",
                        encoding="utf-8")
    backend = ScriptedBackend(["A wins [[A]]", "[[B]]"])
    judge = LLMPairwiseJudge(backend, LLMOptions(prompt=load_judge_prompt(template, None)))
    verdict = asyncio.run(judge.judge_pair(ONE_A, ONE_B))
    assert judge.name == "llm-pairwise:scripted:my-judge:text"
    first, second = (r.messages for r in backend.requests)
    assert first == [{"role": "system", "content": "Be fair."},
                     {"role": "user", "content": "Q: What is 2+2?\nA: 4\nB: It is 5.\n1:user 1:assistant "
                                                 "Verdict as [[A]]/[[B]]/[[C]]."}]
    assert second[1]["content"].startswith("Q: What is 2+2?\nA: It is 5.\nB: 4")
    assert verdict.winner == "A" and verdict.detail["orders"] == {"AB": "A", "BA": "A"}
    assert verdict.detail["variant"] == "prompt:my-judge"


def test_jinja_single_prompt_grades_with_rating_format(tmp_path):
    template = tmp_path / "grader.jinja"
    template.write_text('{% set type = "single" %}Rate: {{ question }} -> {{ answer }}. Rating: [[N]]',
                        encoding="utf-8")
    backend = ScriptedBackend(["Rating: [6]"])
    judge = LLMGradeJudge(backend, LLMOptions(prompt=load_judge_prompt(template, None)))
    grade = asyncio.run(judge.grade(ONE_A))
    assert backend.requests[0].messages == [{"role": "user", "content": "Rate: What is 2+2? -> 4. Rating: [[N]]"}]
    assert grade.score == 6.0


def test_prompt_type_must_fit_the_judge(tmp_path):
    template = tmp_path / "grader.jinja"
    template.write_text('{% set type = "single" %}{{ answer }}', encoding="utf-8")
    with pytest.raises(ConfigError, match="single prompt"):
        LLMPairwiseJudge(ScriptedBackend([]), LLMOptions(prompt=load_judge_prompt(template, None)))


def test_jinja_syntax_error_names_file_and_line(tmp_path):
    template = tmp_path / "broken.jinja"
    template.write_text("line one\n{% if %}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.jinja:2"):
        load_judge_prompt(template, None)


def test_pairs_cli_takes_a_prompt_file(tmp_path, run_cli, pairs_file):
    template = tmp_path / "short.jinja"
    template.write_text("{{ question }} | {{ answer_a }} | {{ answer_b }}", encoding="utf-8")
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps(["[[A]]", "[[B]]"] * 3), encoding="utf-8")
    config = tmp_path / "judge.yaml"
    config.write_text(json.dumps({"backends": {"judge": {"kind": "scripted", "script": str(script)}},
                                  "concurrency": 1}), encoding="utf-8")
    code, out, err = run_cli("judge", "pairs", "--config", config, "--prompt-file", template, "--input", pairs_file,
                             "--no-progress", "-o", tmp_path / "v.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert {r["winner"] for r in rows} == {"A"} and rows[0]["judge"].endswith(":short:text")


def test_prompt_name_without_file_is_a_config_error(tmp_path, run_cli, pairs_file):
    code, _, err = run_cli("judge", "pairs", "--prompt-name", "pair-v2", "--input", pairs_file,
                           "-o", tmp_path / "v.jsonl")
    assert code == 2 and "--prompt-file" in err


# ----------------------------------------------------------------------------- FastChat's own prompts

@needs_mt_bench
def test_fastchat_pair_prompts_render_exactly_as_fastchat():
    """pair-v2 is FastChat's prompt_template.format(question, answer_a, answer_b) with its system prompt;
    pair-v2-multi-turn fills both turns of both answers."""
    rows = {json.loads(line)["name"]: json.loads(line) for line in PROMPTS.read_text().splitlines()}
    backend = ScriptedBackend(["[[A]]", "[[C]]", "[[B]]", "[[B]]"])
    judge = LLMPairwiseJudge(backend, LLMOptions(prompt=load_judge_prompt(PROMPTS, "pair-v2")))
    verdict = asyncio.run(judge.judge_pair(ONE_A, ONE_B, turn=1))
    assert backend.requests[0].messages == [
        {"role": "system", "content": rows["pair-v2"]["system_prompt"]},
        {"role": "user", "content": rows["pair-v2"]["prompt_template"].format(
            question="What is 2+2?", answer_a="4", answer_b="It is 5.")}]
    assert verdict.winner == "tie"          # [[A]] then [[C]] (the swapped order): the orders disagree
    multi = LLMPairwiseJudge(backend, LLMOptions(prompt=load_judge_prompt(PROMPTS, "pair-v2-multi-turn")))
    verdict = asyncio.run(multi.judge_pair(TWO_A, TWO_B))
    assert backend.requests[2].messages[1]["content"] == rows["pair-v2-multi-turn"]["prompt_template"].format(
        question_1="Name a fruit.", question_2="Another?", answer_a_1="Apple.", answer_b_1="Rock.",
        answer_a_2="Pear.", answer_b_2="Stone.")
    assert verdict.winner == "tie"          # B in the first order, B (= a) in the swapped one


@needs_mt_bench
def test_reference_prompt_without_reference_is_a_config_error():
    judge = LLMGradeJudge(ScriptedBackend([]), LLMOptions(prompt=load_judge_prompt(PROMPTS, "single-math-v1")))
    with pytest.raises(ConfigError, match="ref_answer_1"):
        asyncio.run(judge.grade(ONE_A))


def fastchat_layout(tmp_path: Path) -> Path:
    """data/mt_bench/ with two questions (81 writing, 101 reasoning) and three models' answers."""
    root = tmp_path / "mt_bench"
    (root / "model_answer").mkdir(parents=True)
    (root / "reference_answer").mkdir()
    questions = {json.loads(line)["question_id"]: line for line in (MT_BENCH / "question.jsonl").read_text().splitlines()}
    (root / "question.jsonl").write_text(questions[81] + "\n" + questions[101] + "\n", encoding="utf-8")
    references = [line for line in (MT_BENCH / "reference_answer_gpt-4.jsonl").read_text().splitlines()
                  if json.loads(line)["question_id"] == 101]
    (root / "reference_answer" / "gpt-4.jsonl").write_text(references[0] + "\n", encoding="utf-8")
    for model, answers in {"good": ["GOOD-1", "GOOD-2"], "bad": ["BAD-1", "BAD-2"], "base": ["BASE-1", "BASE-2"]}.items():
        rows = [{"question_id": q, "model_id": model, "choices": [{"index": 0, "turns": [f"{a} q{q}" for a in answers]}]}
                for q in (81, 101)]
        (root / "model_answer" / f"{model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@needs_mt_bench
def test_mt_bench_pairwise_baseline_output_reads_like_show_result(tmp_path):
    """Two answer files against one baseline, both turns, the math prompt with references for question 101;
    the judge prefers whichever answer says GOOD, else the baseline."""
    import pandas as pd

    root = fastchat_layout(tmp_path)

    def responder(messages, params):
        text = messages[-1]["content"]
        a_part, b_part = text.split("Start of Assistant B", 1)   # one- and two-turn FastChat templates
        if "GOOD" in a_part or "BASE" in a_part and "BAD" in b_part:
            return "A is better. [[A]]"
        return "B is better. [[B]]"

    backend = ScriptedBackend(responder)
    output = root / "model_judgment" / "scripted_pair.jsonl"
    summary = asyncio.run(mt_bench_job(
        JudgeConfig(prompt_file=str(PROMPTS), concurrency=1), mode="pairwise-baseline",
        answer_files=[root / "model_answer" / "good.jsonl", root / "model_answer" / "bad.jsonl"],
        baseline_file=root / "model_answer" / "base.jsonl", reference_file=root / "reference_answer" / "gpt-4.jsonl",
        output=output, progress=False, backends={"judge": backend}))
    assert summary.done == 8                       # 2 models x 2 questions x 2 turns
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    prompts = {(r["model_1"], r["question_id"], r["turn"]): r["judge"][1] for r in rows}
    assert prompts[("good", 81, 1)] == "pair-v2" and prompts[("good", 81, 2)] == "pair-v2-multi-turn"
    assert prompts[("good", 101, 1)] == "pair-math-v1" and prompts[("good", 101, 2)] == "pair-math-v1-multi-turn"
    math_row = next(r for r in rows if r["question_id"] == 101 and r["turn"] == 1 and r["model_1"] == "good")
    reference = json.loads((root / "reference_answer" / "gpt-4.jsonl").read_text())["choices"][0]["turns"][0]
    assert reference in math_row["g1_user_prompt"] and "GOOD-1 q101" in math_row["g1_user_prompt"]
    assert math_row["g2_user_prompt"].index("BASE-1") < math_row["g2_user_prompt"].index("GOOD-1")

    # show_result.py display_result_pairwise, step by step
    df_all = pd.read_json(output, lines=True)
    df_all = df_all[(df_all["g1_winner"] != "error") & (df_all["g2_winner"] != "error")]
    results = []
    for _, row in df_all.iterrows():
        if row["g1_winner"] == "tie" or row["g1_winner"] != row["g2_winner"]:
            results += [{"model": row["model_1"], "win": 0, "loss": 0, "tie": 1},
                        {"model": row["model_2"], "win": 0, "loss": 0, "tie": 1}]
        else:
            winner, loser = ((row["model_1"], row["model_2"]) if row["g1_winner"] == "model_1"
                             else (row["model_2"], row["model_1"]))
            results += [{"model": winner, "win": 1, "loss": 0, "tie": 0},
                        {"model": loser, "win": 0, "loss": 1, "tie": 0}]
    table = pd.DataFrame(results).groupby(["model"]).sum()
    table = table[table.index != "base"]
    table["win_rate_adjusted"] = (table["win"] + 0.5 * table["tie"]) / (table["win"] + table["loss"] + table["tie"])
    assert table.loc["good", "win_rate_adjusted"] == 1.0 and table.loc["bad", "win_rate_adjusted"] == 0.0
    assert set(df_all.columns) >= {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge",
                                   "g1_user_prompt", "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}


@needs_mt_bench
def test_mt_bench_single_output_reads_like_show_result(tmp_path):
    import pandas as pd

    root = fastchat_layout(tmp_path)
    backend = ScriptedBackend(lambda messages, params: "Rating: [[9]]" if "GOOD" in messages[-1]["content"]
                              else "no rating here")
    output = root / "model_judgment" / "scripted_single.jsonl"
    asyncio.run(mt_bench_job(JudgeConfig(prompt_file=str(PROMPTS), concurrency=1, max_reasks=0), mode="single",
                             answer_files=[root / "model_answer" / "good.jsonl", root / "model_answer" / "bad.jsonl"],
                             baseline_file=None, reference_file=root / "reference_answer" / "gpt-4.jsonl",
                             output=output, progress=False, backends={"judge": backend}))
    df_all = pd.read_json(output, lines=True)
    df = df_all[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    means = df[df["turn"] == 1].groupby(["model", "turn"]).mean()
    assert means.loc[("good", 1), "score"] == 9.0 and "bad" not in df["model"].tolist()
    assert (df_all[df_all["model"] == "bad"]["score"] == -1).all()
    assert set(df_all["judge"].map(lambda j: j[1])) == {"single-v1", "single-v1-multi-turn", "single-math-v1",
                                                        "single-math-v1-multi-turn"}
