"""The MIMG agent steps as pure `format_*_input` / `parse_*_output` pairs (docs/methods.md, MIMG steps 2-5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from chat.agents import ParseError
from chat.backends.base import ResponseFormat
from chat.conversation import Message
from chat.filters import degenerate_reason
from generate.agents import (json_reply, json_schema_format, json_text, json_texts, marked_section, normalized,
                             object_schema)
from generate.prompts import render

QUESTIONS_MARKER = "QUESTIONS:"
ANSWER_MARKER = "ANSWER:"
SHORT_ANSWER_MARKER = "SHORT ANSWER:"
SCORE_MARKER = "SCORE:"
QUESTION_MARKER = "QUESTION:"
#: Short answers meaning the passage does not answer the question.
UNANSWERABLE = frozenset({"unanswerable", "unknown", "not stated", "not mentioned", "n/a", "none"})

#: The answer agent's reply (docs/methods.md, MIMG step 2): the long answer (rationale), then the short answer.
ANSWER_SCHEMA = object_schema(answer={"type": "string"}, short_answer={"type": "string"})
ANSWER_FORMAT = json_schema_format("answer", ANSWER_SCHEMA)
#: The verification agent's reply (docs/methods.md, MIMG step 3): a whole-number score from 1 to 10.
VERIFY_SCHEMA = object_schema(score={"type": "integer", "enum": list(range(1, 11))})
VERIFY_FORMAT = json_schema_format("score", VERIFY_SCHEMA)
#: The merger agent's reply (docs/methods.md, MIMG step 5): the merged question, then its reasoning answer.
MERGE_SCHEMA = object_schema(question={"type": "string"}, answer={"type": "string"})
MERGE_FORMAT = json_schema_format("merged_qa", MERGE_SCHEMA)

_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022]|Q\d*\s*[.):])\s*(.*)$", re.IGNORECASE)
_DOCUMENT_NOUNS = r"(?:passage|text|article|document|paragraph|excerpt|chunk|extract)"
#: References that only make sense next to the passage (docs/methods.md, MIMG step 2: no "this passage" / "the above").
DANGLING_REFERENCES = (
    # the noun in lower case: "The Text of Light" (a title) is not a reference to the passage
    re.compile(rf"\b(?i:this|that|these|those|the|given|provided)\s+{_DOCUMENT_NOUNS}s?\b"),
    re.compile(r"\b(?:the\s+)?(?:above|aforementioned)\b", re.IGNORECASE),
    re.compile(r"\bmentioned\s+(?:above|earlier|here)\b", re.IGNORECASE),
    re.compile(r"\bthe\s+author\b", re.IGNORECASE),
)


def dangling_reference(question: str) -> str | None:
    """The first phrase of `question` that refers to an unseen passage ("this passage", "the above"), or None."""
    for pattern in DANGLING_REFERENCES:
        found = pattern.search(question)
        if found:
            return found.group(0)
    return None


@dataclass(frozen=True)
class QuestionSet:
    """Questions parsed from one question-agent reply: the self-contained ones and the rejected ones (with why)."""

    questions: list[str]
    rejected: list[dict[str, str]]


@dataclass(frozen=True)
class AnswerReply:
    """The answer agent's long answer (kept as rationale) and short answer; `answerable` false if it said so."""

    answer: str
    short_answer: str

    @property
    def answerable(self) -> bool:
        return self.short_answer.strip().rstrip(".").casefold() not in UNANSWERABLE


@dataclass(frozen=True)
class MergedQA:
    """A merged multi-hop question and its answer, which carries the reasoning."""

    question: str
    answer: str


def _list_items(body: str) -> list[str]:
    """Numbered or bulleted lines of `body` (every non-blank line when none has a list mark)."""
    lines = [line for line in body.splitlines() if line.strip()]
    if any(_LIST_ITEM.match(line) for line in lines):
        items = [match.group(1).strip() for line in lines if (match := _LIST_ITEM.match(line))]
    else:
        items = [line.strip() for line in lines]
    return [item for item in items if item]


# -- single-hop question agent ------------------------------------------------------------------------

def question_format(max_questions: int) -> ResponseFormat:
    """The question agent's reply (docs/methods.md, MIMG step 2): `{"questions": [...]}`, 1 to `max_questions`."""
    return json_schema_format("questions", object_schema(
        questions={"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max_questions}))


def format_question_input(title: str, passage: str, max_questions: int) -> list[Message]:
    """docs/methods.md, MIMG step 2: up to `max_questions` self-contained questions about one chunk."""
    return [Message("system", render("mimg_question_system", max_questions=max_questions)),
            Message("user", render("mimg_question", title=title, passage=passage))]


def parse_question_output(text: str, max_questions: int) -> QuestionSet:
    """The "questions" of `question_format`'s JSON object, or (free-text fallback) the list after "QUESTIONS:":
    the first `max_questions` distinct ones; those with a dangling reference or degenerate text (chat.filters)
    are rejected (kept aside with the reason). ParseError when no question is listed."""
    data = json_reply(text, ("questions",))
    items = json_texts(data, "questions") if data is not None else _list_items(marked_section(text, QUESTIONS_MARKER))
    if not items:
        raise ParseError("no questions listed")
    questions: list[str] = []
    rejected: list[dict[str, str]] = []
    seen: set[str] = set()
    for question in items[:max_questions]:
        if normalized(question) in seen:
            rejected.append({"question": question, "reason": "duplicate"})
            continue
        seen.add(normalized(question))
        phrase = dangling_reference(question)
        degenerate = degenerate_reason(question)
        if degenerate is not None:
            rejected.append({"question": question, "reason": degenerate})
        elif phrase is not None:
            rejected.append({"question": question, "reason": f"dangling reference: {phrase!r}"})
        else:
            questions.append(question)
    return QuestionSet(questions, rejected)


# -- answer agent ----------------------------------------------------------------------------------------

def format_answer_input(title: str, passage: str, question: str) -> list[Message]:
    """docs/methods.md, MIMG step 2: the answer to one question from its chunk, long (rationale) and short."""
    return [Message("system", render("mimg_answer_system")),
            Message("user", render("mimg_answer", title=title, passage=passage, question=question))]


def parse_answer_output(text: str) -> AnswerReply:
    """The long and the short answer of ANSWER_SCHEMA's JSON object, or (free-text fallback) the long answer after
    "ANSWER:" (up to "SHORT ANSWER:") and the short answer; ParseError if either is missing."""
    data = json_reply(text, tuple(ANSWER_SCHEMA["properties"]))
    if data is not None:
        answer, short = json_text(data, "answer"), json_text(data, "short_answer").splitlines()[0].strip()
    else:
        answer = marked_section(text, ANSWER_MARKER, until=(SHORT_ANSWER_MARKER,))
        short = marked_section(text, SHORT_ANSWER_MARKER).splitlines()[0].strip()
    if not short:
        raise ParseError('nothing after "SHORT ANSWER:"')
    return AnswerReply(answer, short)


# -- quality verification agent ------------------------------------------------------------------------

def format_verify_input(passages: Sequence[dict[str, str]], question: str, answer: str, hops: int) -> list[Message]:
    """docs/methods.md, MIMG step 3 (and step 5 for merged QAs): a 1-10 quality score of a QA against its passages."""
    return [Message("system", render("mimg_verify_system", hops=hops)),
            Message("user", render("mimg_verify", passages=list(passages), question=question, answer=answer))]


def parse_verify_output(text: str) -> int:
    """The whole-number score 1-10 of VERIFY_SCHEMA's JSON object, or (free-text fallback) after "SCORE:"
    ("8", "8/10", "8."); ParseError otherwise."""
    data = json_reply(text, tuple(VERIFY_SCHEMA["properties"]))
    if data is not None:
        score = data.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, str)):
            raise ParseError(f'the JSON object needs a whole number "score" from 1 to 10, got {score!r}')
        body = str(score)
    else:
        body = marked_section(text, SCORE_MARKER)
    found = re.match(r"\s*\**(\d{1,2})(?:\s*/\s*10)?\b", body)
    if not found or not 1 <= int(found.group(1)) <= 10:
        raise ParseError(f"the score must be a whole number from 1 to 10, got {body[:30]!r}")
    return int(found.group(1))


# -- multi-hop merger agent ------------------------------------------------------------------------------

def format_merge_input(question: str, answer: str, new_question: str, new_answer: str, hops: int) -> list[Message]:
    """docs/methods.md, MIMG step 5: merge the current (hops-1)-hop QA with one more QA into a `hops`-hop QA."""
    return [Message("system", render("mimg_merge_system", hops=hops)),
            Message("user", render("mimg_merge", question=question, answer=answer, new_question=new_question,
                                   new_answer=new_answer, hops=hops))]


def parse_merge_output(text: str, sources: Sequence[str]) -> MergedQA:
    """The merged question and its reasoning answer of MERGE_SCHEMA's JSON object, or (free-text fallback) after
    "QUESTION:" (up to "ANSWER:") and "ANSWER:"; ParseError if either is missing, if the question repeats a
    source question, or if it has a dangling reference."""
    data = json_reply(text, tuple(MERGE_SCHEMA["properties"]))
    if data is not None:
        question, answer = json_text(data, "question"), json_text(data, "answer")
    else:
        question = marked_section(text, QUESTION_MARKER, until=(ANSWER_MARKER,))
        answer = marked_section(text, ANSWER_MARKER)
    if normalized(question) in {normalized(source) for source in sources}:
        raise ParseError("the merged question repeats one of the questions it merges")
    phrase = dangling_reference(question)
    if phrase is not None:
        raise ParseError(f"the merged question refers to an unseen passage ({phrase!r}); name things explicitly")
    return MergedQA(question, answer)


def format_training_prompt(passages: Sequence[dict[str, str]], question: str) -> str:
    """The prompt of a training record (docs/methods.md, MIMG step 6): the passages, then the question."""
    return render("mimg_training_prompt", passages=list(passages), question=question)
