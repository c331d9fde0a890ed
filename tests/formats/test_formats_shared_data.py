"""Every data file in ../shared/data loads with its expected format and exact record / reject counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.conversation import Conversation, Document, PreferencePair
from chat.formats import JudgePromptTemplate, detect_format, read_records

RMB = "preference/rmb-pairwise/Helpfulness_"

#: relative path -> (format, records, rejected rows). Rejects are genuinely invalid rows:
#: hh-rlhf lines 87, 517, 926, 1104 have an empty final chosen reply; RMB GeneralExcerpt
#: elements 29-33 end their prompt with an empty user message ("language": "Nolang").
EXPECTED: dict[str, tuple[str, int, int]] = {
    "judgments/alpaca_eval/FuseChat-Gemma-2-9B-Instruct.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz": ("alpaca-eval", 805, 0),
    "judgments/alpaca_eval/Mistral-7B-Instruct-v0.2.alpaca_eval_gpt4_turbo_fn.annotations.json.gz": ("alpaca-eval", 805, 0),
    "mt_bench/judge_prompts.jsonl": ("fastchat-judge-prompts", 8, 0),
    "mt_bench/question.jsonl": ("mt-bench", 80, 0),
    "mt_bench/reference_answer_gpt-4.jsonl": ("mt-bench-answers", 30, 0),
    "mt_bench_101/mtbench101.jsonl.gz": ("mt-bench-101", 1388, 0),
    "multihop/hotpot_dev_distractor_100.json.gz": ("hotpotqa", 100, 0),
    "multihop/longmit_4hop_examples.jsonl.gz": ("longmit-qa", 63, 0),
    "multihop/longmit_text_corpus_200.jsonl.gz": ("documents", 200, 0),
    "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz": ("hh-rlhf", 1796, 4),
    f"{RMB}Brainstorming_Problem_Solving.json.gz": ("rmb", 100, 0),
    f"{RMB}Chat_Casual_Conversation.json.gz": ("rmb", 306, 0),
    f"{RMB}Chat_Supportive_Conversation.json.gz": ("rmb", 114, 0),
    f"{RMB}Classification_Content_Categorization.json.gz": ("rmb", 107, 0),
    f"{RMB}Classification_Quality_and_Compliance_Assessment.json.gz": ("rmb", 57, 0),
    f"{RMB}Closed_QA_ContextBased.json.gz": ("rmb", 447, 0),
    f"{RMB}Closed_QA_OptionBased.json.gz": ("rmb", 473, 0),
    f"{RMB}Code_Data_Management.json.gz": ("rmb", 376, 0),
    f"{RMB}Code_Development_and_Implementation.json.gz": ("rmb", 399, 0),
    f"{RMB}Code_Quality_and_Optimization.json.gz": ("rmb", 384, 0),
    f"{RMB}Generation_Professional_Content_Generation.json.gz": ("rmb", 347, 0),
    f"{RMB}Open_QA_Factual.json.gz": ("rmb", 664, 0),
    f"{RMB}Open_QA_General_Explanation.json.gz": ("rmb", 413, 0),
    f"{RMB}Open_QA_Hypothetical_Scenarios.json.gz": ("rmb", 42, 0),
    f"{RMB}Open_QA_Interpretative_Analysis.json.gz": ("rmb", 107, 0),
    f"{RMB}Open_QA_Personal_Opinion_and_Advice.json.gz": ("rmb", 78, 0),
    f"{RMB}Open_QA_Technical_and_Practical_Support.json.gz": ("rmb", 238, 0),
    f"{RMB}Reasoning_Analytical_Reasoning.json.gz": ("rmb", 596, 0),
    f"{RMB}Reasoning_Human_Decision_Making.json.gz": ("rmb", 165, 0),
    f"{RMB}Reasoning_Logical_Deduction.json.gz": ("rmb", 222, 0),
    f"{RMB}Reasoning_Pattern_Recognition.json.gz": ("rmb", 52, 0),
    f"{RMB}Rewrite_Paraphrasing.json.gz": ("rmb", 83, 0),
    f"{RMB}Rewrite_PostQuality_Assessment_Rewriting.json.gz": ("rmb", 222, 0),
    f"{RMB}Rewrite_Textual_ExpansionReduction.json.gz": ("rmb", 50, 0),
    f"{RMB}Rewrite_Tone_Adjustment.json.gz": ("rmb", 103, 0),
    f"{RMB}Role_Playing_General_Character.json.gz": ("rmb", 163, 0),
    f"{RMB}Role_Playing_Specific_Character.json.gz": ("rmb", 209, 0),
    f"{RMB}Summarization_Specialized_Summaries.json.gz": ("rmb", 189, 0),
    f"{RMB}Summarization_Standard_Summaries.json.gz": ("rmb", 341, 0),
    f"{RMB}Translation_GeneralExcerpt_Language_Translation.json.gz": ("rmb", 478, 5),
    f"{RMB}Translation_Literary_and_Cultural_Translation.json.gz": ("rmb", 176, 0),
    f"{RMB}Translation_Technical_and_Scientific_Translation.json.gz": ("rmb", 192, 0),
    "seeds/self_instruct_seed_tasks.jsonl": ("self-instruct", 175, 0),
    "seeds/user_oriented_instructions.jsonl": ("self-instruct", 252, 0),
}

RECORD_TYPES = {"alpaca-eval": PreferencePair, "hh-rlhf": PreferencePair, "rmb": PreferencePair,
                "fastchat-judge-prompts": JudgePromptTemplate, "documents": Document}


def data_files(root: Path) -> list[str]:
    """Every data file under the shared folder (licences and the SOURCES.md index excluded)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "LICENSE" not in p.name and p.suffix != ".md")


def test_every_shared_data_file_has_an_expectation(shared_data):
    assert data_files(shared_data) == sorted(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_shared_file_loads_with_expected_format_and_counts(shared_data, relative):
    expected_format, expected_records, expected_rejects = EXPECTED[relative]
    path = shared_data / relative
    assert detect_format(path) == expected_format
    rejects: list = []
    records = list(read_records(path, on_error="skip", rejects=rejects))
    assert (len(records), len(rejects)) == (expected_records, expected_rejects)
    record_type = RECORD_TYPES.get(expected_format, Conversation)
    assert all(isinstance(record, record_type) for record in records)
    assert len({record.id for record in records}) == len(records), "ids must be unique within a file"


def test_shared_rejects_are_the_known_invalid_rows(shared_data):
    hh_rejects: list = []
    list(read_records(shared_data / "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz",
                      on_error="skip", rejects=hh_rejects))
    assert [(r["line"], r["field"], r["reason"]) for r in hh_rejects] == [
        (87, "chosen[3].content", "empty content"), (517, "chosen[1].content", "empty content"),
        (926, "chosen[1].content", "empty content"), (1104, "chosen[1].content", "empty content")]
    rmb_rejects: list = []
    list(read_records(shared_data / f"{RMB}Translation_GeneralExcerpt_Language_Translation.json.gz",
                      on_error="skip", rejects=rmb_rejects))
    assert [r["field"] for r in rmb_rejects] == [f"[{i}].conversation_input[2].content" for i in range(29, 34)]
    assert {r["raw"]["conversation_input"][2]["language"] for r in rmb_rejects} == {"Nolang"}


def test_hh_rlhf_pairs_mostly_differ_only_in_the_final_turn(shared_data):
    pairs = list(read_records(shared_data / "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz",
                              on_error="skip", rejects=[]))
    final_only = sum(len(p.chosen.messages) == len(p.rejected.messages) == p.shared_prefix_length + 1 for p in pairs)
    assert final_only == len(pairs)
    assert max(p.chosen.turns for p in pairs) == 18


def test_mt_bench_questions_keep_the_second_turn_for_later(shared_data):
    questions = list(read_records(shared_data / "mt_bench/question.jsonl"))
    assert all(len(q.messages) == 1 and len(q.meta["next_user_turns"]) == 1 for q in questions)
    assert questions[0].id == "81" and questions[0].meta["category"] == "writing"


def test_mt_bench_reference_answers_become_two_turn_conversations(shared_data):
    answers = list(read_records(shared_data / "mt_bench/reference_answer_gpt-4.jsonl"))
    assert all([m.role for m in a.messages] == ["user", "assistant"] * 2 for a in answers)
    assert {a.meta["category"] for a in answers} == {"math", "reasoning", "coding"}


def test_rmb_pairs_keep_models_category_and_uid(shared_data):
    pair = next(read_records(shared_data / f"{RMB}Rewrite_Paraphrasing.json.gz"))
    assert pair.id == "7253"
    assert pair.meta["category"] == "Pairwise_set/Helpfulness/Rewrite/Paraphrasing"
    assert pair.meta["chosen_model"] == "gpt-4o-mini-2024-07-18"


def test_weighted_alpaca_eval_keeps_its_five_ties(shared_data):
    pairs = list(read_records(shared_data / "judgments/alpaca_eval/"
                              "FuseChat-Gemma-2-9B-Instruct.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz"))
    ties = [p for p in pairs if p.meta["tie"]]
    assert len(ties) == 5 and all(p.meta["preference"] == 1.5 for p in ties)


def test_longmit_multihop_questions_name_their_documents(shared_data):
    conversations = list(read_records(shared_data / "multihop/longmit_4hop_examples.jsonl.gz"))
    corpus_ids = {d.id for d in read_records(shared_data / "multihop/longmit_text_corpus_200.jsonl.gz")}
    assert {c.meta["hop_kind"] for c in conversations} == {"indoc", "crossdoc"}
    assert all(set(c.meta["doc_ids"]) <= set(c.meta["context_doc_ids"]) for c in conversations)
    assert set().union(*(c.meta["context_doc_ids"] for c in conversations)) <= corpus_ids
    exact = [c for c in conversations if c.meta["hop_qa_ids_exact"]]
    assert exact and all(len(c.meta["rationale"]) == c.meta["hops"] for c in exact)
