"""FastChat MT-Bench answer files `{question_id, model_id, choices: [{turns}]}` joined with question.jsonl into full conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.errors import InputError
from chat.formats.base import CONVERSATION, FORMATS, RecordParser, RecordReader, SourceInfo
from chat.formats.fields import json_type, optional, require, row_id
from chat.formats.mt_bench import question_turns
from chat.formats.sources import open_source

QUESTION_FILE = "question.jsonl"


def find_question_file(answers: Path) -> Path | None:
    """FastChat keeps question.jsonl beside the answers or one level up (`mt_bench/model_answer/x.jsonl`)."""
    for directory in (answers.parent, answers.parent.parent):
        candidate = directory / QUESTION_FILE
        if candidate.is_file():
            return candidate
    return None


def load_questions(path: Path) -> dict[str, dict[str, Any]]:
    """question_id (as a string) -> `{turns, category}` from an MT-Bench question file."""
    source = open_source(path)
    questions: dict[str, dict[str, Any]] = {}
    for row in source.rows():
        if row.error is not None:
            raise InputError(path, row.line, *row.error)
        try:
            if not isinstance(row.value, dict):
                raise ValidationError("row", f"expected an object, got {json_type(row.value)}")
            question_id = row_id(row.value, "question_id")
            if not question_id:
                raise ValidationError("question_id", "missing field")
            questions[question_id] = {"turns": question_turns(row.value),
                                      "category": optional(row.value, "category", str, "")}
        except ValidationError as exc:
            raise InputError(path, row.line, exc.field, exc.reason) from None
    return questions


class MTBenchAnswerReader(RecordReader):
    """Model or reference answers to MT-Bench: each choice becomes the full two-turn conversation
    (q1, a1, q2, a2); questions without an answer turn stay in `meta["next_user_turns"]`."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return "question_id" in row and isinstance(row.get("choices"), list)

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        raise ValidationError("question_id", "MT-Bench answers need their question file: read them from a local path")

    def bind(self, source: SourceInfo) -> RecordParser:
        if source.path is None:
            raise InputError(source.name, None, "format", "MT-Bench answers need question.jsonl beside them: pass a local file")
        question_file = find_question_file(source.path)
        if question_file is None:
            raise InputError(source.name, None, "format",
                             f"no {QUESTION_FILE} found in {source.path.parent} or {source.path.parent.parent} "
                             "(FastChat layout: mt_bench/question.jsonl with answers beside it or in a subfolder)")
        questions = load_questions(question_file)
        return lambda row: self._join(row, questions, question_file)

    def _join(self, row: dict[str, Any], questions: dict[str, dict[str, Any]], question_file: Path) -> Iterator[Conversation]:
        question_id = row_id(row, "question_id")
        if not question_id:
            raise ValidationError("question_id", "missing field")
        if question_id not in questions:
            raise ValidationError("question_id", f"no question {question_id} in {question_file}")
        question = questions[question_id]
        choices = require(row, "choices", list)
        if not choices:
            raise ValidationError("choices", "no choices")
        model = optional(row, "model_id", str, "") or optional(row, "model", str, "")
        own_id = row_id(row, "answer_id") or f"{model}:{question_id}"
        conversations = []
        for index, choice in enumerate(choices):
            where = f"choices[{index}]"
            if not isinstance(choice, dict):
                raise ValidationError(where, f"expected an object, got {json_type(choice)}")
            answers = require(choice, "turns", list, where)
            if len(answers) > len(question["turns"]):
                raise ValidationError(f"{where}.turns", f"{len(answers)} answers for {len(question['turns'])} questions")
            if not answers:
                raise ValidationError(f"{where}.turns", "no answers")
            messages = []
            for turn, answer in enumerate(answers):
                if not isinstance(answer, str):
                    raise ValidationError(f"{where}.turns[{turn}]", f"expected a string, got {json_type(answer)}")
                if not answer.strip():
                    raise ValidationError(f"{where}.turns[{turn}]", "empty content")
                messages += [{"role": "user", "content": question["turns"][turn]}, {"role": "assistant", "content": answer}]
            meta = {
                "source": "mt_bench",
                "question_id": row.get("question_id"),
                "category": question["category"],
                "model_id": model,
                "next_user_turns": question["turns"][len(answers):],
            }
            conversation_id = own_id if len(choices) == 1 else f"{own_id}:{index}"
            conversations.append(Conversation.from_messages(messages, id=conversation_id, meta=meta))
        yield from conversations


FORMATS.add("mt-bench-answers", MTBenchAnswerReader(),
            "FastChat MT-Bench answers {question_id, model_id, choices: [{turns}]} joined with question.jsonl")
