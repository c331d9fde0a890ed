"""Plumbing of one MUSIC pair: backend calls per step, re-asks, per-pair usage and the drop filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from augment.config import MusicConfig
from augment.steps import (SWAP_FORMAT, TURN_STOPS, RoleBreak, Swap, format_assistant_input, format_contrast_input,
                           format_contrast_reask, format_contrastive_assistant_input, normalized,
                           parse_assistant_output, parse_contrast_output, parse_contrastive_assistant_output)
from chat.agents import StepCaller, StepFailed
from chat.backends.base import ChatBackend, Completion
from chat.conversation import Message, PreferencePair, ValidationError
from chat.errors import ConfigError
from chat.filters import (DEGENERATE, PARSE_FAILURE, REPEATED_TURN, REVEALS_SWAP, SCAFFOLDING, degenerate_reason,
                          repeat_reason, swap_reveal_reason)
from chat.token_estimate import approx_conversation_tokens
from chat.user_simulator import UserTurnRejected, ask_user_turn, format_user_simulator_input, parse_user_turn

#: Why a pair was dropped (each is a summary counter `dropped_<reason>`).
IDENTICAL_AFTER_DIVERGENCE = "identical_after_divergence"
ROLE_ALTERNATION = "role_alternation"
EMPTY_TURN = "empty_turn"
TRUNCATED_TURN = "truncated_turn"
TOO_LONG = "too_long"
#: the content filters of `chat.filters`: user turns (scaffolding, degenerate, repeated), assistant turns
#: (degenerate, repeated) and the rejected branch's assistant turns from d on (also reveals_swap)
CONTENT_REASONS = (SCAFFOLDING, DEGENERATE, REPEATED_TURN, REVEALS_SWAP)
DROP_REASONS = (IDENTICAL_AFTER_DIVERGENCE, ROLE_ALTERNATION, PARSE_FAILURE, EMPTY_TURN, TRUNCATED_TURN, TOO_LONG,
                *CONTENT_REASONS)


class PairDropped(StepFailed):
    """A filter rejected the pair; `reason` is one of DROP_REASONS."""


@dataclass
class MusicBackends:
    """The backend of each simulator role (docs/methods.md, MUSIC: one simulator may play them all)."""

    user: ChatBackend
    assistant: ChatBackend
    contrast: ChatBackend

    @classmethod
    def from_roles(cls, backends: Mapping[str, ChatBackend]) -> "MusicBackends":
        """`user`, `assistant`, `contrast` from a role mapping, each falling back to `simulator`."""
        if "simulator" not in backends:
            raise ConfigError("backends: a 'simulator' entry is required")
        simulator = backends["simulator"]
        return cls(user=backends.get("user", simulator), assistant=backends.get("assistant", simulator),
                   contrast=backends.get("contrast", simulator))

    def names(self) -> dict[str, str]:
        return {"user": self.user.name, "assistant": self.assistant.name, "contrast": self.contrast.name}


class TurnWriter:
    """Runs the MUSIC steps of one pair against the backends: one call per turn, bounded re-asks for
    the contrastive step, and the per-turn filters as PairDropped: empty, truncated, wrong speaker, and the
    content filters of `chat.filters` (CONTENT_REASONS)."""

    def __init__(self, backends: MusicBackends, config: MusicConfig, item_seed: int):
        self.backends = backends
        self.config = config
        self.step = StepCaller(config.temperature, config.max_tokens, item_seed, config.max_reasks,
                               reask_temperature=config.reask_temperature)
        self.usage = self.step.usage
        self.user_step = StepCaller(config.user_temperature, config.user_max_tokens, item_seed, usage=self.usage)

    async def user_turn(self, history: Sequence[Message], turn: int, branch: str) -> Message:
        """The simulated user's turn `turn`, written from this branch's own history (`chat.user_simulator`:
        the conversation shown with roles flipped). A scaffolding, degenerate or repeated turn is asked again
        (attempt k has the call label `user/<branch>/<turn>/<k>`), `config.user_attempts` times in all; then
        the pair is dropped with the last attempt's reason."""
        where = f"user turn {turn} ({branch})"
        request = format_user_simulator_input(history)

        async def write(attempt: int) -> str:
            label = f"user/{branch}/{turn}" + (f"/{attempt}" if attempt else "")
            completion = await self.user_step.call("user", self.backends.user, request, label, stop=TURN_STOPS)
            return self._turn_text(completion, parse_user_turn, where)

        try:
            return Message("user", await ask_user_turn(write, history, self.config.user_attempts))
        except UserTurnRejected as rejected:
            raise PairDropped(rejected.problem.reason, f"{where}: {rejected}") from None

    async def assistant_turn(self, history: Sequence[Message], turn: int, branch: str) -> Message:
        """A normal assistant answer to the branch's latest user turn. On the rejected branch after d (the
        `divergence_only` scope) it must not reveal the earlier swap either."""
        completion = await self.step.call("assistant", self.backends.assistant, format_assistant_input(history),
                                           f"assistant/{branch}/{turn}", stop=TURN_STOPS)
        where = f"assistant turn {turn} ({branch})"
        text = self._turn_text(completion, parse_assistant_output, where)
        self._check_assistant_text(text, history, where, rejected_branch=branch == "rejected")
        return Message("assistant", text)

    async def swapped_instruction(self, history: Sequence[Message], turn: int) -> Swap:
        """The contrastive step: a related-but-different replacement of the latest user instruction, asked
        for as SWAP_FORMAT JSON and re-asked at most `config.max_reasks` times when the reply cannot be parsed."""
        original = history[-1].content
        request = format_contrast_input(history)
        return await self.step.ask_parsed("contrast", self.backends.contrast, request,
                                          lambda text: parse_contrast_output(text, original), f"contrast/{turn}",
                                          lambda _sent, reply, error: format_contrast_reask(request, reply, error),
                                          response_format=SWAP_FORMAT, where=f"contrastive step at turn {turn}")

    async def contrastive_turn(self, history: Sequence[Message], turn: int) -> tuple[Message, Swap]:
        """The rejected branch's answer at a contrast turn: the swapped instruction answered well, without
        saying that the request was changed."""
        swap = await self.swapped_instruction(history, turn)
        completion = await self.step.call("contrast", self.backends.contrast,
                                          format_contrastive_assistant_input(history, swap),
                                          f"contrastive_assistant/{turn}", stop=TURN_STOPS)
        where = f"contrastive assistant turn {turn}"
        text = self._turn_text(completion, parse_contrastive_assistant_output, where)
        self._check_assistant_text(text, history, where, rejected_branch=True)
        if repeat_reason(text, swap.swapped_instruction):
            raise PairDropped(REPEATED_TURN, f"{where} repeats the swapped instruction: {text[:80]!r}")
        return Message("assistant", text), swap

    def _turn_text(self, completion: Completion, parse: Callable[[str], str], where: str) -> str:
        if completion.finish_reason == "length" and self.config.drop_truncated:
            raise PairDropped(TRUNCATED_TURN, f"{where} hit max_tokens")
        try:
            text = parse(completion.text)
        except RoleBreak as exc:
            raise PairDropped(ROLE_ALTERNATION, f"{where}: {exc}") from None
        if not text.strip():
            raise PairDropped(EMPTY_TURN, f"{where} is empty")
        return text

    @staticmethod
    def _check_assistant_text(text: str, history: Sequence[Message], where: str, *, rejected_branch: bool) -> None:
        """Degenerate text, a copy of the user turn it answers, and (rejected branch) a revealed swap."""
        reason = degenerate_reason(text) or repeat_reason(text, history[-1].content)
        if reason is None and rejected_branch:
            reason = swap_reveal_reason(text)
        if reason is not None:
            raise PairDropped(reason, f"{where}: {text[:80]!r}")


def check_length(chosen: Sequence[Message], rejected: Sequence[Message], max_tokens: int) -> None:
    """Drop the pair as soon as either branch exceeds `max_tokens` (approximate)."""
    longest = max(approx_conversation_tokens(chosen), approx_conversation_tokens(rejected))
    if longest > max_tokens:
        raise PairDropped(TOO_LONG, f"~{longest} tokens > max_conversation_tokens {max_tokens}")


def build_pair(chosen: Sequence[Message], rejected: Sequence[Message], shared_messages: int, pair_id: str,
               meta: dict) -> PreferencePair:
    """The finished pair, after the end-of-pair filters: the branches must differ somewhere after the
    `shared_messages` they share before the divergence turn, and both must alternate user/assistant."""
    after_chosen = [(m.role, normalized(m.content)) for m in chosen[shared_messages:]]
    after_rejected = [(m.role, normalized(m.content)) for m in rejected[shared_messages:]]
    if after_chosen == after_rejected:
        raise PairDropped(IDENTICAL_AFTER_DIVERGENCE, "both branches say the same after the divergence turn")
    try:
        return PreferencePair.from_messages([m.to_dict() for m in chosen], [m.to_dict() for m in rejected],
                                            id=pair_id, meta=meta)
    except ValidationError as exc:
        raise PairDropped(ROLE_ALTERNATION, str(exc)) from None
