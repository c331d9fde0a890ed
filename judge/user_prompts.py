"""Judge prompts users bring: FastChat's judge_prompts.jsonl rows or a Jinja template, rendered and parsed per output_format.

docs/methods.md, Judge step 1 (MT-Bench / FastChat `common.py` `run_judge_pair` / `run_judge_single`).
A FastChat prompt is a str.format template; its variables are FastChat's:

    pairwise, one turn:    question, answer_a, answer_b                       [+ ref_answer_1]
    pairwise, two turns:   question_1, question_2, answer_a_1, answer_b_1, answer_a_2, answer_b_2
                           [+ ref_answer_1, ref_answer_2]
    single, one turn:      question, answer                                    [+ ref_answer_1]
    single, two turns:     question_1, question_2, answer_1, answer_2          [+ ref_answer_1, ref_answer_2]

A Jinja template (a file ending in .jinja / .j2) gets the same variables plus `conversation_a`,
`conversation_b` (pairwise) or `conversation` (single): lists of {role, content, turn}; `turn` (the
judged user turn) and `reference` (the first reference answer or None). It may set
`{% set system_prompt = "..." %}`, `{% set type = "single" %}` (default "pairwise") and
`{% set output_format = "[[rating]]" %}` (default "[[A]]" pairwise, "[[rating]]" single).

Verdicts follow the prompt's output_format: "[[A]]" reads [[A]] / [[B]] / [[C]] (C = tie);
"[[rating]]" reads [[N]] (FastChat's backup "[N]" too); "[[rating_a,rating_b]]" reads two scores and
calls scores within 0.1 a tie (FastChat's TIE_DELTA). Unlike FastChat, a reply holding two different
verdicts is unparseable rather than read as the first one found (turnwise never guesses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2 import meta

from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.formats.judge_prompts import JudgePromptTemplate
from judge.base import through_turn
from judge.parsing import VerdictParseError, parse_pairwise_verdict, parse_rating
from judge.templates import numbered_messages

#: FastChat's tie margin of two-score verdicts.
TIE_DELTA = 0.1
PAIRWISE_FORMATS = ("[[A]]", "[[rating_a,rating_b]]")
SINGLE_FORMATS = ("[[rating]]",)
_ONE_SCORE_BACKUP = re.compile(r"(?<!\[)\[(\d+\.?\d*)\](?!\])")
_TWO_SCORES = re.compile(r"\[\[?(\d+\.?\d*),\s?(\d+\.?\d*)\]\]?")


@dataclass(frozen=True)
class JinjaJudgePrompt:
    """A judge prompt from a Jinja file, with the interface of JudgePromptTemplate (name, type,
    system_prompt, output_format, placeholders, multi_turn, reference_based, render)."""

    name: str
    type: str
    system_prompt: str
    output_format: str
    source: str
    placeholders: tuple[str, ...]

    @property
    def multi_turn(self) -> bool:
        return "question_2" in self.placeholders

    @property
    def reference_based(self) -> bool:
        return any(name.startswith("ref_answer") or name == "reference" for name in self.placeholders)

    def render(self, **values: Any) -> str:
        environment = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                         autoescape=False)
        try:
            return environment.from_string(self.source).render(**values).strip()
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"judge prompt {self.name}: {exc.message}") from None


JudgePrompt = JudgePromptTemplate | JinjaJudgePrompt


def load_jinja_prompt(path: Path) -> JinjaJudgePrompt:
    """A Jinja judge prompt file (module docstring); a syntax error is a ConfigError naming the file and line."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"prompt_file: cannot read {path}: {exc.strerror or exc}") from None
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    try:
        parsed = environment.parse(source)
        module = environment.from_string(source).module
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"prompt_file: {path}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError:
        module = None
    judge_type = str(getattr(module, "type", "pairwise"))
    if judge_type not in ("pairwise", "single"):
        raise ConfigError(f"prompt_file: {path}: type must be pairwise or single, got {judge_type!r}")
    output_format = str(getattr(module, "output_format", "[[A]]" if judge_type == "pairwise" else "[[rating]]"))
    return JinjaJudgePrompt(name=path.stem, type=judge_type, system_prompt=str(getattr(module, "system_prompt", "")),
                            output_format=output_format, source=source,
                            placeholders=tuple(sorted(meta.find_undeclared_variables(parsed))))


def load_judge_prompt(prompt_file: str | Path, prompt_name: str | None) -> JudgePrompt:
    """The prompt `prompt_name` of a FastChat judge_prompts.jsonl, or the Jinja template `prompt_file`."""
    path = Path(prompt_file)
    if path.suffix in (".jinja", ".j2"):
        prompt = load_jinja_prompt(path)
    else:
        prompts = load_prompt_file(path)
        if not prompt_name:
            raise ConfigError(f"prompt_name: {path} holds {len(prompts)} prompts; choose one with --prompt-name "
                              f"({', '.join(prompts)})")
        if prompt_name not in prompts:
            raise ConfigError(f"prompt_name: no prompt {prompt_name!r} in {path} (known: {', '.join(prompts)})")
        prompt = prompts[prompt_name]
    formats = PAIRWISE_FORMATS if prompt.type == "pairwise" else SINGLE_FORMATS
    if prompt.output_format not in formats:
        raise ConfigError(f"prompt {prompt.name}: output_format {prompt.output_format!r} is not one of "
                          f"{', '.join(formats)} for a {prompt.type} prompt")
    return prompt


def load_prompt_file(path: Path) -> dict[str, JudgePromptTemplate]:
    """name -> prompt of a FastChat judge_prompts.jsonl (read with the fastchat-judge-prompts reader)."""
    from chat.formats.reading import load_judge_prompts

    if not path.is_file():
        raise ConfigError(f"prompt_file: no such file {path}")
    return {p.name: p for p in load_judge_prompts(path, "fastchat-judge-prompts")}


# ----------------------------------------------------------------------------- rendering

def _turn_texts(conversation: Conversation) -> tuple[list[str], list[str]]:
    """(user messages, assistant replies) in turn order."""
    users = [m.content for m in conversation.messages if m.role == "user"]
    replies = [m.content for m in conversation.messages if m.role == "assistant"]
    return users, replies


def _judged_turn(prompt: JudgePrompt, conversation: Conversation, turn: int | None) -> int:
    """The user turn a prompt judges: a two-turn prompt judges turn 2 (FastChat's multi-turn), a one-turn
    prompt `turn` (default 1: FastChat's first-turn judgment)."""
    if prompt.multi_turn:
        if conversation.turns < 2 or turn not in (None, 2):
            raise ValueError(f"prompt {prompt.name} judges turn 2 of two-turn conversations; "
                             f"{conversation.id!r} has {conversation.turns} turn(s), asked for turn {turn}")
        return 2
    return turn or 1


def _reference_values(references: list[str] | None) -> dict[str, Any]:
    references = list(references or [])
    values: dict[str, Any] = {"reference": references[0] if references else None}
    for index, text in enumerate(references[:2], start=1):
        values[f"ref_answer_{index}"] = text
    return values


def pairwise_values(prompt: JudgePrompt, a: Conversation, b: Conversation, turn: int | None,
                    references: list[str] | None) -> dict[str, Any]:
    """The template variables of a pairwise prompt for conversations a (assistant A) and b (module docstring)."""
    judged = _judged_turn(prompt, a, turn)
    users_a, replies_a = _turn_texts(through_turn(a, judged))
    _, replies_b = _turn_texts(through_turn(b, judged))
    values: dict[str, Any] = {"turn": judged, "conversation_a": numbered_messages(through_turn(a, judged)),
                              "conversation_b": numbered_messages(through_turn(b, judged)),
                              **_reference_values(references)}
    if prompt.multi_turn:
        values.update(question_1=users_a[0], question_2=users_a[1], answer_a_1=replies_a[0], answer_b_1=replies_b[0],
                      answer_a_2=replies_a[1], answer_b_2=replies_b[1])
    else:
        values.update(question=users_a[judged - 1], answer_a=replies_a[judged - 1], answer_b=replies_b[judged - 1])
    return values


def single_values(prompt: JudgePrompt, conversation: Conversation, turn: int | None,
                  references: list[str] | None) -> dict[str, Any]:
    """The template variables of a single-answer prompt for `conversation`."""
    judged = _judged_turn(prompt, conversation, turn)
    shown = through_turn(conversation, judged)
    users, replies = _turn_texts(shown)
    values: dict[str, Any] = {"turn": judged, "conversation": numbered_messages(shown), **_reference_values(references)}
    if prompt.multi_turn:
        values.update(question_1=users[0], question_2=users[1], answer_1=replies[0], answer_2=replies[1])
    else:
        values.update(question=users[judged - 1], answer=replies[judged - 1])
    return values


def render_messages(prompt: JudgePrompt, values: dict[str, Any]) -> list[Message]:
    """[system prompt (when the prompt has one), user prompt]; a variable the prompt needs but the
    conversation cannot give (a reference answer) is a ConfigError naming it."""
    needed = [name for name in prompt.placeholders if name.startswith("ref_answer") and values.get(name) is None]
    if needed:
        raise ConfigError(f"judge prompt {prompt.name} needs {', '.join(needed)}: give reference answers "
                          "(or choose a prompt without ref_answer)")
    available = {k: v for k, v in values.items() if v is not None}
    try:
        user = prompt.render(**available)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"judge prompt {prompt.name}: {exc}") from None
    messages = [Message("system", prompt.system_prompt)] if prompt.system_prompt.strip() else []
    return messages + [Message("user", user)]


# ----------------------------------------------------------------------------- verdicts

def parse_two_scores(text: str) -> str:
    """"A" / "B" / "tie" from "[[rating_a,rating_b]]" (FastChat: scores within TIE_DELTA are a tie)."""
    found = {(float(x), float(y)) for x, y in _TWO_SCORES.findall(text)}
    if len(found) != 1:
        raise VerdictParseError("no verdict: expected [[rating_a,rating_b]]" if not found
                                else "conflicting score pairs")
    score_a, score_b = found.pop()
    if abs(score_a - score_b) <= TIE_DELTA:
        return "tie"
    return "A" if score_a > score_b else "B"


def parse_fastchat_rating(text: str) -> float:
    """A rating from "[[N]]", else FastChat's backup pattern "[N]"; VerdictParseError when none or several."""
    try:
        return parse_rating(text)
    except VerdictParseError:
        backup = {float(v) for v in _ONE_SCORE_BACKUP.findall(text)}
        if len(backup) == 1:
            value = backup.pop()
            if 1.0 <= value <= 10.0:
                return value
        raise


def parse_two_scores_or_verdict(text: str) -> str:
    """Two scores, or (a re-ask answered in JSON, judge/parsing.py) a verdict."""
    try:
        return parse_two_scores(text)
    except VerdictParseError:
        return parse_pairwise_verdict(text)


def verdict_parser(prompt: JudgePrompt) -> Callable[[str], Any]:
    """The parser of the prompt's output_format (re-asks answer in JSON, which these parsers also read)."""
    return {"[[A]]": parse_pairwise_verdict, "[[rating_a,rating_b]]": parse_two_scores_or_verdict,
            "[[rating]]": parse_fastchat_rating}[prompt.output_format]
