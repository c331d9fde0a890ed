"""The Review-Instruct agent steps as pure `format_*_input` / `parse_*_output` pairs (docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from chat.conversation import Message
from generate.agents import (ParseError, json_reply, json_schema_format, json_text, marked_section, normalized,
                             object_schema, visible_text, word_count)
from generate.prompts import render

#: Markers a free-text reply may put before its visible part; the JSON steps' fallback parses them too.
ANSWER_MARKER = "ANSWER:"
REVIEW_MARKER = "REVIEW:"
VOTE_MARKER = "VOTE:"
QUESTION_MARKER = "QUESTION:"
DECISION_MARKER = "DECISION:"
#: Vote values; the chairman's decision values.
POSITIVE, NEGATIVE = "positive", "negative"
BREADTH, DEPTH, UNREVIEWED = "breadth", "depth", "unreviewed"
#: Reviewer personas (docs/methods.md, Review-Instruct step 3), each a focus written in reviewer_system.jinja.
REVIEWER_PERSONAS = ("accuracy", "depth", "helpfulness")

#: The reviewer's reply (docs/methods.md, Review-Instruct step 3): the critique first, then the vote it leads to.
REVIEWER_SCHEMA = object_schema(review={"type": "string"}, vote={"type": "string", "enum": [POSITIVE, NEGATIVE]})
REVIEWER_FORMAT = json_schema_format("review_vote", REVIEWER_SCHEMA)
#: The chairman's reply when the direction is given (majority vote, no reviews): the next question only.
CHAIRMAN_SCHEMA = object_schema(question={"type": "string"})
CHAIRMAN_FORMAT = json_schema_format("next_question", CHAIRMAN_SCHEMA)
#: The chairman's reply when it decides the direction itself (docs/methods.md, Review-Instruct steps 4-5): the
#: decision first, then the question it leads to.
CHAIRMAN_DECISION_SCHEMA = object_schema(decision={"type": "string", "enum": [BREADTH, DEPTH]},
                                         question={"type": "string"})
CHAIRMAN_DECISION_FORMAT = json_schema_format("decision_question", CHAIRMAN_DECISION_SCHEMA)


@dataclass(frozen=True)
class Review:
    """One reviewer's visible critique and vote; `score` is set for the RM reviewer (its reward)."""

    reviewer: str
    text: str
    vote: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"reviewer": self.reviewer, "vote": self.vote, "text": self.text}
        if self.score is not None:
            row["score"] = self.score
        return row


# -- candidate: answers the current question -------------------------------------------------------

def format_candidate_input(history: Sequence[Message], max_words: int) -> list[Message]:
    """The conversation so far (ending with the current question) under the candidate's system prompt."""
    messages = list(history)
    system = messages.pop(0).content if messages and messages[0].role == "system" else None
    prompt = render("candidate_system", max_words=max_words)
    return [Message("system", f"{system}\n\n{prompt}" if system else prompt), *messages]


def parse_candidate_output(text: str, max_words: int) -> str:
    """The visible answer: the reply, or the text after an "ANSWER:" line if the model wrote one; ParseError if it
    is empty or longer than `max_words` words."""
    answer = visible_text(text, ANSWER_MARKER)
    if word_count(answer) > max_words:
        raise ParseError(f"the answer has {word_count(answer)} words, the limit is {max_words}")
    return answer


# -- reviewers: critique on five criteria and a vote -------------------------------------------------

def format_reviewer_input(history: Sequence[Message], answer: str, max_words: int,
                          persona: str | None = None) -> list[Message]:
    """Ask a reviewer to critique `answer` to the last question of `history` (usefulness, relevance,
    accuracy, depth, creativity) and to vote positive or negative; a `persona` of REVIEWER_PERSONAS adds the
    reviewer's focus to its system prompt (None: the generic reviewer)."""
    *earlier, question = [m for m in history if m.role != "system"]
    return [Message("system", render("reviewer_system", max_words=max_words, persona=persona)),
            Message("user", render("reviewer", history=[m.to_dict() for m in earlier], question=question.content,
                                   answer=answer))]


def parse_reviewer_output(text: str, reviewer: str) -> Review:
    """The critique and the vote of REVIEWER_SCHEMA's JSON object, or (free-text fallback) the critique after
    "REVIEW:" (up to "VOTE:") and the vote after "VOTE:"; ParseError if either is missing or the vote is
    neither positive nor negative."""
    data = json_reply(text, tuple(REVIEWER_SCHEMA["properties"]))
    if data is not None:
        review, vote_text = json_text(data, "review"), json_text(data, "vote")
    else:
        review = marked_section(text, REVIEW_MARKER, until=(VOTE_MARKER,))
        vote_text = marked_section(text, VOTE_MARKER)
    vote = first_word(vote_text)
    if vote not in (POSITIVE, NEGATIVE):
        raise ParseError(f'the vote must be "positive" or "negative", got {vote_text[:40]!r}')
    return Review(reviewer, review, vote)


def first_word(text: str) -> str:
    """The first word of a vote or decision, lower-cased, punctuation and markdown around it dropped."""
    words = text.split()
    return words[0].strip(".,;:!*_\"'").lower() if words else ""


def breadth_or_depth(votes: Sequence[str]) -> str:
    """The direction the votes choose (docs/methods.md, Review-Instruct step 4; the `majority_vote` ablation,
    recorded as `vote_majority` when the chairman decides): breadth when most votes are positive,
    depth when most are negative. A tie counts as depth: a split panel means the answer has weaknesses worth
    probing. No votes at all (the no-review ablation) is `unreviewed`."""
    if not votes:
        return UNREVIEWED
    positive = sum(vote == POSITIVE for vote in votes)
    return BREADTH if positive > len(votes) - positive else DEPTH


# -- chairman: asks the next question ----------------------------------------------------------------

def format_chairman_input(questions: Sequence[str], answer: str, reviews: Sequence[Review], decision: str | None,
                          max_words: int) -> list[Message]:
    """The questions so far, the latest answer, the reviews (none in the no-review ablation) and the
    direction the next question must take; `decision` None asks the chairman to decide breadth or depth
    itself from the reviews (its reply then follows CHAIRMAN_DECISION_SCHEMA)."""
    return [Message("system", render("chairman_system", max_words=max_words, decides=decision is None)),
            Message("user", render("chairman", questions=list(questions), answer=answer,
                                   reviews=[review.to_dict() for review in reviews], decision=decision))]


def parse_chairman_output(text: str, questions: Sequence[str], max_words: int) -> str:
    """The next question of CHAIRMAN_SCHEMA's JSON object, or (free-text fallback) the text after "QUESTION:";
    ParseError if missing, too long, or a repeat of an earlier one."""
    data = json_reply(text, tuple(CHAIRMAN_SCHEMA["properties"]))
    question = json_text(data, "question") if data is not None else marked_section(text, QUESTION_MARKER)
    return checked_question(question, questions, max_words)


def parse_chairman_decision(text: str, questions: Sequence[str], max_words: int) -> tuple[str, str]:
    """(decision, next question) of CHAIRMAN_DECISION_SCHEMA's JSON object, or (free-text fallback) the word
    after "DECISION:" and the text after "QUESTION:"; ParseError if the decision is neither breadth nor depth,
    or the question is missing, too long or a repeat."""
    data = json_reply(text, tuple(CHAIRMAN_DECISION_SCHEMA["properties"]))
    if data is not None:
        decision_text, question = json_text(data, "decision"), json_text(data, "question")
    else:
        decision_text = marked_section(text, DECISION_MARKER, until=(QUESTION_MARKER,))
        question = marked_section(text, QUESTION_MARKER)
    decision = first_word(decision_text)
    if decision not in (BREADTH, DEPTH):
        raise ParseError(f'the decision must be "breadth" or "depth", got {decision_text[:40]!r}')
    return decision, checked_question(question, questions, max_words)


def checked_question(question: str, questions: Sequence[str], max_words: int) -> str:
    """`question`, unless it is longer than `max_words` words or repeats one of `questions` (ParseError)."""
    if word_count(question) > max_words:
        raise ParseError(f"the question has {word_count(question)} words, the limit is {max_words}")
    if normalized(question) in {normalized(q) for q in questions}:
        raise ParseError("the question repeats an earlier question")
    return question
