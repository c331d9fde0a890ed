"""Each reader on small self-made rows: the mapping into the data model, and the field named for bad rows."""

from __future__ import annotations

import pytest

from chat.conversation import ValidationError
from chat.errors import InputError
from chat.formats import FORMATS, detect_row_format
from chat.formats.hh_rlhf import parse_transcript


def one(format_name: str, row: dict):
    records = list(FORMATS.get(format_name).records(row))
    assert len(records) == 1
    return records[0]


def invalid(format_name: str, row: dict) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        list(FORMATS.get(format_name).records(row))
    return caught.value.field, caught.value.reason


def roles(conversation) -> list[str]:
    return [m.role for m in conversation.messages]


# --- trl -------------------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_trl_keeps_id_meta_and_scalar_columns():
    pair = one("trl", {"id": 12, "chosen": MESSAGES, "rejected": [MESSAGES[0], {"role": "assistant", "content": "B"}],
                       "source": "magpie", "meta": {"k": [1]}, "messages": MESSAGES})
    assert pair.id == "12" and pair.meta == {"source": "magpie", "k": [1]}
    assert pair.chosen.id == "12:chosen"


def test_trl_explicit_prompt_is_prefixed_to_both_sides():
    pair = one("trl", {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
                       "rejected": [{"role": "assistant", "content": "B"}]})
    assert pair.chosen.to_messages() == MESSAGES
    assert pair.rejected.messages[0].content == "Q"


def test_trl_standard_string_rows_become_one_turn_pairs():
    pair = one("trl", {"prompt": "Q", "chosen": "A", "rejected": "B"})
    assert pair.chosen.to_messages() == MESSAGES and pair.rejected.messages[1].content == "B"


def test_trl_string_prompt_beside_full_lists_is_not_duplicated():
    pair = one("trl", {"prompt": "Q", "chosen": MESSAGES, "rejected": [MESSAGES[0], {"role": "assistant", "content": "B"}]})
    assert len(pair.chosen.messages) == 2


def test_trl_rejects_mixed_list_and_string_sides():
    assert invalid("trl", {"chosen": MESSAGES, "rejected": "B"}) == ("rejected", "expected a list like chosen, got a string")


# --- hh-rlhf ---------------------------------------------------------------------------------

def test_hh_transcript_splits_on_blank_line_markers_only():
    messages, merged = parse_transcript("\n\nHuman: say Human: hi\n\nAssistant: Assistant: hi\nHuman: no", "chosen")
    assert messages == [{"role": "user", "content": "say Human: hi"},
                        {"role": "assistant", "content": "Assistant: hi\nHuman: no"}]
    assert merged == 0


def test_hh_transcript_leading_text_becomes_a_system_message():
    messages, _ = parse_transcript("You are kind.\n\nHuman: hi\n\nAssistant: hello", "chosen")
    assert messages[0] == {"role": "system", "content": "You are kind."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]


def test_hh_transcript_without_leading_blank_line_still_parses():
    messages, _ = parse_transcript("Human: hi\n\nAssistant: hello  ", "chosen")
    assert messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_hh_repeated_speaker_turns_are_merged_and_counted():
    pair = one("hh-rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: c",
                           "rejected": "\n\nHuman: a\n\nAssistant: d"})
    assert pair.chosen.messages[-1].content == "b\n\nc"
    assert pair.meta == {"source": "hh-rlhf", "merged_turns": 1}


def test_hh_empty_final_reply_is_invalid():
    assert invalid("hh-rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: a\n\nAssistant: b"}) == (
        "chosen[1].content", "empty content")


def test_hh_transcript_without_markers_is_invalid():
    assert invalid("hh-rlhf", {"chosen": "just text", "rejected": "\n\nHuman: a\n\nAssistant: b"})[0] == "chosen"


def test_hh_transcript_ending_with_the_human_is_invalid():
    assert invalid("hh-rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c",
                               "rejected": "\n\nHuman: a\n\nAssistant: b"}) == (
        "chosen", "a preference conversation must end with an assistant message")


# --- rmb -------------------------------------------------------------------------------------

RMB_ROW = {"pair_uid": "9", "conversation_input": [{"role": "user", "content": "Q", "language": "English"}],
           "chosen": {"llm_name": "m1", "answer": "A"}, "reject": {"llm_name": "m2", "answer": "B"},
           "category_path": "Pairwise_set/Helpfulness/Chat"}


def test_rmb_pair_appends_each_answer_to_the_prompt():
    pair = one("rmb", RMB_ROW)
    assert pair.id == "9" and pair.chosen.to_messages() == MESSAGES
    assert pair.meta == {"source": "rmb", "category": "Pairwise_set/Helpfulness/Chat", "pair_uid": "9",
                         "chosen_model": "m1", "rejected_model": "m2", "language": "English"}


def test_rmb_prompt_must_end_with_the_user():
    row = {**RMB_ROW, "conversation_input": [*RMB_ROW["conversation_input"], {"role": "assistant", "content": "x"}]}
    assert invalid("rmb", row) == ("conversation_input", "the prompt must end with a user message")


def test_rmb_missing_answer_names_the_side():
    assert invalid("rmb", {**RMB_ROW, "reject": {"llm_name": "m2"}}) == ("reject.answer", "missing field")


# --- alpaca-eval -----------------------------------------------------------------------------

def alpaca_eval_row(preference) -> dict:
    return {"instruction": "Q", "output_1": "one", "generator_1": "g1", "output_2": "two", "generator_2": "g2",
            "annotator": "judge", "preference": preference, "dataset": "koala"}


@pytest.mark.parametrize("preference, chosen, tie", [(1, "one", False), (2, "two", False), (1.49, "one", False),
                                                     (1.51, "two", False), (1.5, "one", True)])
def test_alpaca_eval_preference_picks_the_chosen_output(preference, chosen, tie):
    pair = one("alpaca-eval", alpaca_eval_row(preference))
    assert pair.chosen.messages[-1].content == chosen
    assert pair.meta["tie"] is tie and pair.meta["preference"] == preference
    assert pair.meta["chosen_model"] == ("g1" if chosen == "one" else "g2")


@pytest.mark.parametrize("preference", [0, 3, float("nan"), True, "1", None])
def test_alpaca_eval_preference_outside_one_to_two_is_invalid(preference):
    assert invalid("alpaca-eval", alpaca_eval_row(preference))[0] == "preference"


# --- sharegpt --------------------------------------------------------------------------------

def test_sharegpt_role_aliases_map_to_the_data_model():
    conversation = one("sharegpt", {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                                      {"from": "gpt", "value": "A"}, {"from": "user", "value": "Q2"},
                                                      {"from": "bot", "value": "A2"}]})
    assert roles(conversation) == ["system", "user", "assistant", "user", "assistant"]


def test_sharegpt_unknown_speaker_is_named():
    field, reason = invalid("sharegpt", {"conversations": [{"from": "human", "value": "Q"}, {"from": "tool", "value": "x"}]})
    assert field == "conversations[1].role" and "unknown role 'tool'" in reason


def test_sharegpt_missing_value_is_named():
    assert invalid("sharegpt", {"conversations": [{"from": "human"}]}) == ("conversations[0].value", "missing field")


def test_sharegpt_messages_variant_may_end_with_the_user():
    conversation = one("sharegpt", {"messages": [{"role": "user", "content": "Q"}], "id": "p1"})
    assert conversation.id == "p1" and conversation.ends_with_user


# --- alpaca, self-instruct -------------------------------------------------------------------

def test_alpaca_input_follows_the_instruction_after_a_blank_line():
    conversation = one("alpaca", {"instruction": "Translate.", "input": "Bonjour", "output": "Hello"})
    assert conversation.to_messages() == [{"role": "user", "content": "Translate.\n\nBonjour"},
                                          {"role": "assistant", "content": "Hello"}]


def test_alpaca_without_output_is_a_prompt():
    conversation = one("alpaca", {"instruction": "Write a poem.", "input": "", "output": ""})
    assert roles(conversation) == ["user"]


def test_self_instruct_uses_the_first_instance():
    conversation = one("self-instruct", {"id": "seed_task_1", "name": "n", "instruction": "Sort.",
                                         "instances": [{"input": "b a", "output": "a b"}, {"input": "d c", "output": "c d"}],
                                         "is_classification": False})
    assert conversation.id == "seed_task_1"
    assert conversation.to_messages()[0]["content"] == "Sort.\n\nb a"
    assert conversation.meta == {"source": "self_instruct", "instances": 2, "name": "n", "is_classification": False}


# --- mt-bench, mt-bench-101 ------------------------------------------------------------------

def test_mt_bench_question_scripts_the_second_turn():
    conversation = one("mt-bench", {"question_id": 101, "category": "math", "turns": ["Q1", "Q2"], "reference": ["R1", "R2"]})
    assert conversation.id == "101" and conversation.to_messages() == [{"role": "user", "content": "Q1"}]
    assert conversation.meta["next_user_turns"] == ["Q2"] and conversation.meta["reference"] == ["R1", "R2"]


def test_mt_bench_empty_turn_is_named():
    assert invalid("mt-bench", {"question_id": 1, "turns": ["Q1", ""]}) == ("turns[1]", "empty content")


def test_mt_bench_101_history_becomes_alternating_turns():
    conversation = one("mt-bench-101", {"task": "CM", "id": 5, "history": [{"user": "a", "bot": "b"}, {"user": "c", "bot": "d"}]})
    assert roles(conversation) == ["user", "assistant"] * 2
    assert conversation.id == "5" and conversation.meta == {"source": "mt_bench_101", "task": "CM"}


def test_mt_bench_101_empty_bot_turn_is_named():
    assert invalid("mt-bench-101", {"task": "CM", "id": 5, "history": [{"user": "a", "bot": "b"}, {"user": "c", "bot": ""}]}) == (
        "history[1].bot", "empty content")


# --- hotpotqa, documents ---------------------------------------------------------------------

def test_hotpotqa_hub_layout_keeps_paragraphs_in_meta():
    conversation = one("hotpotqa", {
        "question": "Q?", "answer": "yes", "type": "comparison", "level": "hard",
        "supporting_facts": {"title": ["T1"], "sent_id": [0]},
        "context": {"title": ["T1", "T2"], "sentences": [["S1.", " S2."], ["S3."]]}})
    assert conversation.to_messages() == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "yes"}]
    assert conversation.meta["context"] == [{"title": "T1", "text": "S1. S2."}, {"title": "T2", "text": "S3."}]
    assert conversation.meta["supporting_facts"] == [{"title": "T1", "sent_id": 0}]


def test_hotpotqa_original_layout_and_id():
    conversation = one("hotpotqa", {"_id": "5a8b", "question": "Q?", "answer": "A", "supporting_facts": [["T1", 1]],
                                    "context": [["T1", ["S1.", " S2."]]]})
    assert conversation.id == "5a8b" and conversation.meta["context"] == [{"title": "T1", "text": "S1. S2."}]


def test_documents_use_their_own_id_or_a_content_id():
    assert one("documents", {"id": "d1", "content": "Text."}).id == "d1"
    assert len(one("documents", {"text": "Text."}).id) == 16
    assert invalid("documents", {"id": "d1", "content": " "}) == ("content", "empty content")


# --- longmit ---------------------------------------------------------------------------------

def test_longmit_maps_each_multihop_qa_to_its_seed_and_partners():
    qa = lambda name: {"question": f"{name}?", "answer": name, "rationale": f"because {name}"}  # noqa: E731
    bundle = {
        "aggregated_docs": [{"id": "D0", "content": "x"}, {"id": "D1", "content": "y"}],
        "intra_doc_qas": [[[qa("a"), qa("b")]], [[], [qa("c")]]],  # flattened: 0=a (D0), 1=b (D0), 2=c (D1)
        "selected_qa_ids": [2, 0],  # processed in index order: entry 0 belongs to QA 0, entry 1 to QA 2
        "clustered_mqa_info": [{"indoc_ids": [1], "crossdoc_ids": [2]}, {"indoc_ids": [], "crossdoc_ids": []},
                               {"indoc_ids": [], "crossdoc_ids": [0, 1]}],
        "multihop_qas": [{"indoc": [qa("ab")], "crossdoc": [qa("ac")]}, {"indoc": [], "crossdoc": [qa("ca")]}],
        "token_count": 10,
    }
    conversations = list(FORMATS.get("longmit-qa").records(bundle))
    summary = [(c.messages[0].content, c.meta["hop_kind"], c.meta["hops"], c.meta["hop_qa_ids"], c.meta["doc_ids"],
                c.meta["hop_qa_ids_exact"]) for c in conversations]
    assert summary == [("ab?", "indoc", 2, [0, 1], ["D0"], True),
                       ("ac?", "crossdoc", 2, [0, 2], ["D0", "D1"], True),
                       ("ca?", "crossdoc", 2, [2, 0, 1], ["D1", "D0"], False)]
    assert conversations[1].meta["rationale"] == ["because a", "because c"]
    assert conversations[0].meta["context_doc_ids"] == ["D0", "D1"]


# --- judge prompts ---------------------------------------------------------------------------

def test_judge_prompt_template_knows_its_placeholders():
    template = one("fastchat-judge-prompts", {
        "name": "pair-math-v1-multi-turn", "type": "pairwise", "system_prompt": "Judge.",
        "prompt_template": "{question_1} {ref_answer_1} {question_2} {answer_a_1} {question_1}", "output_format": "[[A]]"})
    assert template.placeholders == ("question_1", "ref_answer_1", "question_2", "answer_a_1")
    assert template.multi_turn and template.reference_based and template.id == "pair-math-v1-multi-turn"
    assert template.render(question_1="q", ref_answer_1="r", question_2="p", answer_a_1="a") == "q r p a q"
    with pytest.raises(ValueError, match="question_2"):
        template.render(question_1="q", ref_answer_1="r", answer_a_1="a")


def test_judge_prompt_unknown_type_is_invalid():
    assert invalid("fastchat-judge-prompts", {"name": "x", "type": "triple", "system_prompt": "", "prompt_template": "t"})[0] == "type"


# --- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("row, expected", [
    ({"chosen": MESSAGES, "rejected": MESSAGES, "source": "s"}, "trl"),
    ({"prompt": "Q", "chosen": "A", "rejected": "B"}, "trl"),
    ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}, "hh-rlhf"),
    (RMB_ROW, "rmb"),
    (alpaca_eval_row(1), "alpaca-eval"),
    ({"conversations": [{"from": "human", "value": "Q"}]}, "sharegpt"),
    ({"messages": MESSAGES}, "sharegpt"),
    ({"instruction": "I", "input": "", "output": "O"}, "alpaca"),
    ({"question_id": 1, "category": "c", "turns": ["Q"]}, "mt-bench"),
    ({"question_id": 1, "model_id": "m", "choices": [{"turns": ["A"]}]}, "mt-bench-answers"),
    ({"task": "CM", "id": 1, "history": [{"user": "a", "bot": "b"}]}, "mt-bench-101"),
    ({"id": "s", "instruction": "I", "instances": []}, "self-instruct"),
    ({"question": "Q", "answer": "A", "context": []}, "hotpotqa"),
    ({"id": "d", "content": "text"}, "documents"),
    ({"aggregated_docs": [], "multihop_qas": []}, "longmit-qa"),
    ({"name": "n", "type": "single", "system_prompt": "", "prompt_template": "t"}, "fastchat-judge-prompts"),
])
def test_first_row_detection(row, expected):
    assert detect_row_format(row) == expected


def test_unknown_first_row_lists_the_known_formats():
    with pytest.raises(InputError, match=r"x\.jsonl:3: format: cannot detect the format from the first row's keys \(a, b\)"):
        detect_row_format({"b": 1, "a": 2}, "x.jsonl", 3)
