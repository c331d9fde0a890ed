"""Scripted Review-Instruct agents and a fake RM for generate/ tests: each role is recognised by its system prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from chat.backends.scripted import ScriptedBackend
from chat.conversation import Conversation
from generate.prompts import render

CANDIDATE_MARK = render("candidate_system", max_words=300).splitlines()[0]
REVIEWER_MARK = render("reviewer_system", max_words=300).splitlines()[0]
CHAIRMAN_MARK = render("chairman_system", max_words=300).splitlines()[0]


def role_of(messages: list[dict[str, str]]) -> str:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    if REVIEWER_MARK in system:
        return "reviewer"
    if CHAIRMAN_MARK in system:
        return "chairman"
    if CANDIDATE_MARK in system:
        return "candidate"
    return "other"


class FakeAgents:
    """Replies in the required formats: the answer (free text) echoes the question, reviewers answer their JSON
    schema and vote by `votes(reviewer_call_index)`, the chairman's JSON asks "Question N?"; `overrides[role]`
    replaces a role's reply (a string or a function of the request messages). `formats[role]` collects the
    response_format of every request of a role."""

    def __init__(self, votes: Callable[[int], str] | None = None, **overrides: Any):
        self.votes = votes or (lambda call: "positive")
        self.overrides = overrides
        self.calls: dict[str, int] = {"candidate": 0, "reviewer": 0, "chairman": 0, "other": 0}
        self.formats: dict[str, list[Any]] = {role: [] for role in self.calls}

    def __call__(self, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
        role = role_of(messages)
        self.calls[role] += 1
        self.formats[role].append(params["response_format"])
        if role in self.overrides:
            override = self.overrides[role]
            return override(messages) if callable(override) else override
        if role == "candidate":
            return f"I should think.\nANSWER: answer to: {messages[-1]['content']}"
        if role == "reviewer":
            return json.dumps({"review": "fine on all five criteria", "vote": self.votes(self.calls["reviewer"] - 1)})
        if role == "chairman":
            asked = messages[-1]["content"].split("Latest answer:")[0].count("\n") - 1
            return json.dumps({"question": f"Question {asked + 1} about {params['seed'] % 97}?"})
        return "unexpected"


def agents_backend(agents: FakeAgents | None = None) -> tuple[ScriptedBackend, FakeAgents]:
    agents = agents or FakeAgents()
    return ScriptedBackend(agents), agents


class FakeRM:
    """A reward model whose reward is +1 for an answer containing `good` and -1 otherwise."""

    def __init__(self, good: str = "answer"):
        self.good = good
        self.calls = 0

    def _reward(self, text: str) -> float:
        return 1.0 if self.good in text else -1.0

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        self.calls += 1
        return [self._reward(c.messages[-1].content) for c in conversations]

    def score_turns(self, conversation: Conversation) -> list[float]:
        self.calls += 1
        return [self._reward(m.content) for m in conversation.messages if m.role == "assistant"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def alpaca_seeds(path: Path, n: int) -> Path:
    return write_jsonl(path, [{"id": f"s{i}", "instruction": f"Explain topic number {i}.", "input": "", "output": ""}
                              for i in range(n)])
