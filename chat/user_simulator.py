"""The one simulated user: a chat model shown the conversation with roles flipped, so its reply is the next user turn.

Used by MUSIC (docs/methods.md, MUSIC step 5: each branch's user writes the next turn from its own branch
history) and by multi-turn best-of-N (docs/methods.md, BoN step 4: the simulated user goes on after each pick).
The model gets a system message saying that it is the user, then the conversation so far with user and
assistant swapped (the assistant's last answer arrives as the model's "user" message and the model's own reply
is the user's next message), then a one-line reminder. No transcript is pasted into a prompt, so there is no scaffolding to echo; a reply
that still contains meta-text, loops or copies a turn is rejected through `chat.filters`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from chat.conversation import Message
from chat.filters import degenerate_reason, repeat_reason, scaffolding_reason
from chat.prompts import PromptSet

PROMPTS = PromptSet("chat.user_simulator_prompts", "v1", version="user-simulator-v1")
#: Version of the simulated-user templates, for record meta.
USER_SIMULATOR_VERSION = PROMPTS.version
#: Roles as the simulating model sees them.
FLIPPED_ROLES = {"user": "assistant", "assistant": "user"}

_LEADING_USER_LABEL = re.compile(r"^\s*(?:\*\*)?(?:\[(?:user|human)\]|(?:user|human)(?:\*\*)?\s*:)(?:\*\*)?\s*",
                                 re.IGNORECASE)


@dataclass(frozen=True)
class UserTurnProblem:
    """Why a simulated user turn cannot be kept: a `chat.filters` reason and what it matched."""

    reason: str
    detail: str


class UserTurnRejected(Exception):
    """Every attempt at a simulated user turn was rejected; `problem` is the last attempt's."""

    def __init__(self, problem: UserTurnProblem, attempts: int):
        super().__init__(f"{problem.reason}: {problem.detail} ({attempts} attempts)")
        self.problem, self.attempts = problem, attempts


def user_simulator_system() -> str:
    """The system message that tells the model it is the user."""
    return PROMPTS.render("user_simulator_system")


def user_simulator_reminder() -> str:
    """The closing system message: a one-line reminder of the task right before the model writes."""
    return PROMPTS.render("user_simulator_reminder")


def format_user_simulator_input(history: Sequence[Message]) -> list[Message]:
    """The request for the next user turn: the user system message, `history` with user and assistant
    swapped (the conversation's own system message is the assistant's and is left out), then a short
    reminder as a last system message. Without the reminder Qwen2.5 0.5B copied a long last answer in 3 of
    6 tries; with it, in none (the templates it needs must accept a system message after the first)."""
    return [Message("system", user_simulator_system()),
            *(Message(FLIPPED_ROLES[m.role], m.content) for m in history if m.role in FLIPPED_ROLES),
            Message("system", user_simulator_reminder())]


def parse_user_turn(text: str) -> str:
    """The next user message: surrounding whitespace, a leading "User:" / "Human:" / "[User]" label and
    wrapping quotes removed. Any other label stays, for `user_turn_problem` to reject."""
    body = _LEADING_USER_LABEL.sub("", text.strip(), count=1).strip()
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'" and body.count(body[0]) == 2:
        body = body[1:-1].strip()
    return body


def user_turn_problem(text: str, history: Sequence[Message]) -> UserTurnProblem | None:
    """Why a parsed user turn must be rejected, or None: scaffolding or meta-text, degenerate text, or a
    near-copy of the turn before it (the assistant's answer) or of the user's own previous turn."""
    for check in (scaffolding_reason, degenerate_reason):
        reason = check(text)
        if reason:
            return UserTurnProblem(reason, f"user turn {text[:80]!r}")
    previous = [m for m in history if m.role in FLIPPED_ROLES][-1:]
    previous_user = [m for m in history if m.role == "user"][-1:]
    for earlier in (*previous, *previous_user):
        reason = repeat_reason(text, earlier.content)
        if reason:
            return UserTurnProblem(reason, f"user turn {text[:80]!r} repeats the {earlier.role} turn before it")
    return None


async def ask_user_turn(write: Callable[[int], Awaitable[str]], history: Sequence[Message], attempts: int) -> str:
    """The next user turn after `history`: `write(attempt)` asks the simulating model (the caller's backend,
    seed and parsing, `format_user_simulator_input` as the request) and returns the parsed turn; a turn that
    `user_turn_problem` rejects is asked again, `attempts` times in all, then UserTurnRejected."""
    problem = None
    for attempt in range(attempts):
        text = await write(attempt)
        problem = user_turn_problem(text, history)
        if problem is None:
            return text
    raise UserTurnRejected(problem, attempts)
