"""Grammar-constrained decoding for the `local` backend: a `response_format` compiled once, one matcher per batch row.

The engine is xgrammar, chosen by `bench/grammar_engines.py` (numbers in bench/NOTES.md). Everything engine
specific sits in `GrammarEngine` and `RowMatcher`, so another engine (llguidance, outlines-core) can replace it
behind the same four calls: `compile`, `RowMatcher.fill`, `RowMatcher.accept`, `GrammarEngine.apply`.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from chat.backends.response_format import check_response_format
from chat.errors import BackendError

if TYPE_CHECKING:
    import torch

#: Name of the grammar engine in use (recorded by benchmarks).
ENGINE = "xgrammar"
#: Upper bound on the memory xgrammar's compiled-grammar cache may hold.
_CACHE_LIMIT_BYTES = 256 * 1024 * 1024
#: xgrammar's C++ error prefix (`[00:58:20] /project/cpp/json_schema_converter.cc:5082: `).
_SOURCE_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


def schema_of(response_format: dict[str, Any] | None) -> tuple[dict[str, Any], bool] | None:
    """The JSON Schema a `response_format` asks for and whether properties outside it are forbidden;
    None for free text (`None` or `{"type": "text"}`). `json_object` is any JSON object.
    A malformed `response_format` is a BackendError naming the field."""
    if response_format is None:
        return None
    try:
        check_response_format(response_format)
    except ValueError as exc:
        raise BackendError(str(exc)) from None
    if response_format["type"] == "text":
        return None
    if response_format["type"] == "json_object":
        return {"type": "object"}, False
    return response_format["json_schema"]["schema"], True


class RowMatcher:
    """The grammar state of one batch row: which tokens may come next, and the tokens taken so far."""

    def __init__(self, matcher: Any):
        self._matcher = matcher

    def fill(self, bitmask: "torch.Tensor", row: int) -> None:
        """Write this row's allowed next tokens into `bitmask[row]` (end-of-turn only where the grammar may end)."""
        self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token: int) -> bool:
        """Advance past `token`; False when the grammar does not allow it."""
        return bool(self._matcher.accept_token(token))


class Grammar:
    """One compiled `response_format`; `matcher()` starts a fresh row state."""

    def __init__(self, compiled: Any, description: str):
        self._compiled = compiled
        self.description = description

    def matcher(self) -> RowMatcher:
        import xgrammar

        return RowMatcher(xgrammar.GrammarMatcher(self._compiled))


class GrammarEngine:
    """Compiles JSON Schemas against one tokenizer; bitmasks are packed int32 (bit set = token allowed)."""

    name = ENGINE

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int]):
        import xgrammar

        self.vocab_size = vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=min(8, os.cpu_count() or 1),
                                                  cache_limit_bytes=_CACHE_LIMIT_BYTES)

    def compile(self, response_format: dict[str, Any] | None) -> Grammar | None:
        """The grammar for `response_format` (None for free text); compiled schemas are cached by xgrammar.
        Compact separators (`", "`, `": "`), so a small model cannot wander off into endless whitespace."""
        parsed = schema_of(response_format)
        if parsed is None:
            return None
        schema, strict = parsed
        text = json.dumps(schema)  # key order kept: it is the order the properties are generated in
        try:
            compiled = self._compiler.compile_json_schema(text, any_whitespace=False, strict_mode=strict)
        except (RuntimeError, ValueError, TypeError) as exc:
            reason = _SOURCE_PREFIX.sub("", str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
            raise BackendError(f"response_format: {ENGINE} cannot compile the JSON schema: {reason}") from None
        return Grammar(compiled, text)

    def new_bitmask(self, rows: int) -> "torch.Tensor":
        import xgrammar

        return xgrammar.allocate_token_bitmask(rows, self.vocab_size)

    def apply(self, logits: "torch.Tensor", bitmask: "torch.Tensor", rows: list[int]) -> None:
        apply_bitmask(logits, bitmask, rows, self.vocab_size)


def apply_bitmask(logits: "torch.Tensor", bitmask: "torch.Tensor", rows: list[int], vocab_size: int) -> None:
    """Set the logits of disallowed tokens to -inf in the given rows (in place); any engine's packed bitmask."""
    import xgrammar

    xgrammar.apply_token_bitmask_inplace(logits, bitmask[: logits.shape[0]].to(logits.device),
                                         vocab_size=vocab_size, indices=rows)
