"""D_aug = D + D_MUSIC: original and MUSIC pairs deduplicated, shuffled and split (docs/methods.md, MUSIC step 7)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat.conversation import PreferencePair, content_id
from chat.errors import ConfigError
from chat.formats import load_pairs, write_jsonl

logger = logging.getLogger(__name__)

#: Share of the mixed rows held out as OUT.eval.jsonl.
DEFAULT_EVAL_FRACTION = 0.05

ORIGINAL, MUSIC = "original", "music"


@dataclass
class MixResult:
    """Counts of one mix and the files written."""

    train_path: Path
    eval_path: Path
    original: int
    music_available: int
    music_used: int
    duplicates_removed: int
    train: int
    eval: int
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Path) else value for key, value in self.__dict__.items()}


def split_paths(output: str | Path) -> tuple[Path, Path]:
    """`OUT.train.jsonl` and `OUT.eval.jsonl` (a trailing `.jsonl` of OUT is dropped first)."""
    text = str(output)
    for suffix in (".jsonl", ".json"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return Path(f"{text}.train.jsonl"), Path(f"{text}.eval.jsonl")


def conversation_key(pair: PreferencePair) -> str:
    """Exact-duplicate key: the messages of both sides (ids and meta ignored)."""
    return content_id({"chosen": pair.chosen.to_messages(), "rejected": pair.rejected.to_messages()})


def mix_datasets(original: str | Path, augmented: str | Path, output: str | Path, *, ratio: float | None = None,
                 count: int | None = None, eval_fraction: float = DEFAULT_EVAL_FRACTION, seed: int = 0,
                 original_format: str | None = None, on_error: str = "fail") -> MixResult:
    """Write D + D_MUSIC as `OUT.train.jsonl` and `OUT.eval.jsonl`.

    MUSIC pairs used: all of `augmented`, or `count` of them, or `ratio` x len(original) of them
    (paper: ~31k MUSIC for ~73k original, ratio ~0.42), picked by a seeded shuffle of the pairs sorted by id
    (so the mix does not depend on the order in which a resumed or concurrent MUSIC run wrote them). Exact duplicates
    (same chosen and rejected messages) are removed, the first occurrence kept (originals first).
    The mix is shuffled with `seed` and its first round(eval_fraction x n) rows become the eval split.
    Each row's meta records `origin` (original|music), `source_file` and `source_id` (for a MUSIC
    pair: the id of the row its seed came from). `on_error="skip"` leaves invalid rows of either
    input out (counted in `rejected`) instead of stopping at the first one.
    """
    if ratio is not None and count is not None:
        raise ConfigError("give either --ratio or --count, not both")
    if ratio is not None and ratio < 0:
        raise ConfigError(f"--ratio: expected >= 0, got {ratio}")
    if count is not None and count < 0:
        raise ConfigError(f"--count: expected >= 0, got {count}")
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"--eval-fraction: expected 0 <= F < 1, got {eval_fraction}")
    rejects: list[dict[str, Any]] = []
    originals = load_pairs(original, original_format, on_error=on_error, rejects=rejects)
    # A resumable MUSIC run appends pairs in completion order; sorting makes the mix depend on the pairs only.
    music = sorted(load_pairs(augmented, on_error=on_error, rejects=rejects), key=lambda pair: pair.id)
    wanted = len(music) if ratio is None and count is None else (count if count is not None
                                                                 else round(ratio * len(originals)))
    if wanted > len(music):
        logger.warning("asked for %d MUSIC pairs but %s holds %d; using all of them", wanted, augmented, len(music))
    chosen_music = random.Random(f"{seed}/music").sample(music, min(wanted, len(music)))

    rows: list[dict[str, Any]] = []
    seen_keys: set[str] = set()
    seen_ids: set[str] = set()
    duplicates = 0
    for origin, path, pairs in ((ORIGINAL, original, originals), (MUSIC, augmented, chosen_music)):
        for pair in pairs:
            key = conversation_key(pair)
            if key in seen_keys:
                duplicates += 1
                continue
            seen_keys.add(key)
            rows.append(_provenance_row(pair, origin, Path(path), seen_ids))
    random.Random(f"{seed}/mix").shuffle(rows)
    n_eval = round(eval_fraction * len(rows))
    train_path, eval_path = split_paths(output)
    write_jsonl(rows[n_eval:], train_path)
    write_jsonl(rows[:n_eval], eval_path)
    return MixResult(train_path, eval_path, original=len(originals), music_available=len(music),
                     music_used=len(chosen_music), duplicates_removed=duplicates, train=len(rows) - n_eval,
                     eval=n_eval, rejected=len(rejects))


def _provenance_row(pair: PreferencePair, origin: str, path: Path, seen_ids: set[str]) -> dict[str, Any]:
    row = pair.to_dict()
    source_id = pair.meta.get("source_id", pair.id) if origin == MUSIC else pair.id
    row["meta"] = {**pair.meta, "origin": origin, "source_file": str(path), "source_id": source_id}
    row_id, n = pair.id, 1
    while row_id in seen_ids:  # two files may reuse an id for different pairs
        n += 1
        row_id = f"{pair.id}#{n}"
    seen_ids.add(row_id)
    row["id"] = row_id
    return row

