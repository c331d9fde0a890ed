"""FastChat judge prompt rows `{name, type, system_prompt, prompt_template, output_format}` as JudgePromptTemplate records."""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from chat.conversation import ValidationError
from chat.formats.base import FORMATS, JUDGE_PROMPT, RecordReader
from chat.formats.fields import optional, require, require_text

#: FastChat's judge kinds: one answer graded on a scale, or two answers compared.
JUDGE_TYPES = ("single", "pairwise")


@dataclass(frozen=True)
class JudgePromptTemplate:
    """One LLM-as-a-judge prompt (Zheng et al. 2023, MT-Bench): `prompt_template` is a str.format
    template with fields such as {question}, {answer_a}, {ref_answer_1}; `output_format` is the
    verdict pattern the judge must print ("[[A]]", "[[rating]]")."""

    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str = ""
    description: str = ""
    category: str = ""

    @property
    def id(self) -> str:
        return self.name

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Template fields in order of first use."""
        names = (field for _, field, _, _ in string.Formatter().parse(self.prompt_template) if field)
        return tuple(dict.fromkeys(names))

    @property
    def multi_turn(self) -> bool:
        return "question_2" in self.placeholders

    @property
    def reference_based(self) -> bool:
        return any(name.startswith("ref_answer") for name in self.placeholders)

    def render(self, **values: str) -> str:
        """The user prompt with every placeholder filled; a missing value is a ValueError naming it."""
        missing = [name for name in self.placeholders if name not in values]
        if missing:
            raise ValueError(f"judge prompt {self.name!r} needs values for: {', '.join(missing)}")
        return self.prompt_template.format(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FastChatJudgePromptReader(RecordReader):
    """FastChat llm_judge `judge_prompts.jsonl`."""

    kind = JUDGE_PROMPT

    def matches(self, row: dict[str, Any]) -> bool:
        return "prompt_template" in row and "name" in row

    def records(self, row: dict[str, Any]) -> Iterator[JudgePromptTemplate]:
        judge_type = require_text(row, "type")
        if judge_type not in JUDGE_TYPES:
            raise ValidationError("type", f"unknown judge type {judge_type!r} (expected one of {', '.join(JUDGE_TYPES)})")
        template = require_text(row, "prompt_template")
        try:
            list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValidationError("prompt_template", f"not a valid format template: {exc}") from None
        yield JudgePromptTemplate(
            name=require_text(row, "name"),
            type=judge_type,
            system_prompt=require(row, "system_prompt", str),
            prompt_template=template,
            output_format=optional(row, "output_format", str, ""),
            description=optional(row, "description", str, ""),
            category=optional(row, "category", str, ""),
        )


FORMATS.add("fastchat-judge-prompts", FastChatJudgePromptReader(),
            "FastChat judge prompts {name, type, system_prompt, prompt_template, output_format}")
