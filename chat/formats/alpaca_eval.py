"""AlpacaEval annotations `{instruction, output_1, generator_1, output_2, generator_2, annotator, preference}` as preference pairs."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import PreferencePair, ValidationError
from chat.formats.base import FORMATS, PAIR, RecordReader
from chat.formats.fields import optional, require_number, require_text, row_id

#: AlpacaEval's preference scale: 1 = output_1 better, 2 = output_2 better, 1.5 = tie.
TIE_PREFERENCE = 1.5


class AlpacaEvalReader(RecordReader):
    """Recorded LLM-judge verdicts (Dubois et al. 2024). `preference` may be continuous (weighted
    annotators): below 1.5 output_1 is chosen, above it output_2. Exactly 1.5 is a tie: the row is
    kept with `meta["tie"] = True` and output_1 as chosen, so consumers can drop or weight ties."""

    kind = PAIR

    def matches(self, row: dict[str, Any]) -> bool:
        return all(key in row for key in ("instruction", "output_1", "output_2", "preference"))

    def records(self, row: dict[str, Any]) -> Iterator[PreferencePair]:
        instruction = require_text(row, "instruction")
        outputs = {1: require_text(row, "output_1"), 2: require_text(row, "output_2")}
        generators = {1: optional(row, "generator_1", str, ""), 2: optional(row, "generator_2", str, "")}
        preference = require_number(row, "preference")
        if not 1.0 <= preference <= 2.0:
            raise ValidationError("preference", f"expected a number in [1, 2], got {row['preference']!r}")
        tie = preference == TIE_PREFERENCE
        winner = 2 if preference > TIE_PREFERENCE else 1
        loser = 3 - winner
        meta = {
            "source": "alpaca_eval",
            "dataset": optional(row, "dataset", str, ""),
            "annotator": optional(row, "annotator", str, ""),
            "preference": row["preference"],
            "tie": tie,
            "generator_1": generators[1],
            "generator_2": generators[2],
            "chosen_model": generators[winner],
            "rejected_model": generators[loser],
        }
        prompt = {"role": "user", "content": instruction}
        yield PreferencePair.from_messages(
            [prompt, {"role": "assistant", "content": outputs[winner]}],
            [prompt, {"role": "assistant", "content": outputs[loser]}],
            id=row_id(row, "id"), meta=meta)


FORMATS.add("alpaca-eval", AlpacaEvalReader(),
            "AlpacaEval annotations {instruction, output_1, output_2, generator_1/2, annotator, preference}")
