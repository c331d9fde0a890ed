"""`augment mix` (dedup, ratio/count, deterministic split, provenance) and `augment inspect` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augment.inspection import pair_stats, render_pair, render_stats, select_pair
from augment.mix import mix_datasets, split_paths
from app.cli import main
from chat.conversation import PreferencePair
from chat.errors import ConfigError
from chat.formats import load_pairs, read_records


def pair_row(pair_id: str, prompt: str, meta: dict | None = None, turns: int = 1, diverge_at: int = 1) -> dict:
    chosen, rejected = [], []
    for turn in range(1, turns + 1):
        same = turn < diverge_at
        chosen += [{"role": "user", "content": f"{prompt} {turn}"}, {"role": "assistant", "content": f"good {turn}"}]
        rejected += [{"role": "user", "content": f"{prompt} {turn}" if turn <= diverge_at else f"other {turn}"},
                     {"role": "assistant", "content": f"good {turn}" if same else f"bad {turn}"}]
    return {"id": pair_id, "chosen": chosen, "rejected": rejected, "meta": meta or {}}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def files(tmp_path):
    original = write(tmp_path / "original.jsonl", [pair_row(f"o{i}", f"original {i}") for i in range(20)])
    music = [pair_row(f"music-o{i}", f"music {i}", {"source_id": f"o{i}", "divergence_turn": 2}, turns=3,
                      diverge_at=2) for i in range(10)]
    music.append(pair_row("music-dup", "original 3"))  # the same conversation as original o3
    augmented = write(tmp_path / "music.jsonl", music)
    return original, augmented


def test_mix_removes_exact_duplicates_and_records_provenance(files, tmp_path):
    original, augmented = files
    result = mix_datasets(original, augmented, tmp_path / "mixed.jsonl", eval_fraction=0.1)
    assert result.duplicates_removed == 1
    rows = list(read_records(result.train_path)) + list(read_records(result.eval_path))
    assert len(rows) == 30 == result.train + result.eval
    origins = {p.id: p.meta["origin"] for p in rows}
    assert sum(o == "music" for o in origins.values()) == 10
    music_row = next(p for p in rows if p.id == "music-o4")
    assert music_row.meta["source_id"] == "o4" and music_row.meta["source_file"] == str(augmented)
    original_row = next(p for p in rows if p.id == "o4")
    assert original_row.meta["source_id"] == "o4" and original_row.meta["origin"] == "original"


def test_mix_split_paths_and_eval_fraction(files, tmp_path):
    original, augmented = files
    result = mix_datasets(original, augmented, tmp_path / "mixed.jsonl", eval_fraction=0.2)
    assert (result.train_path, result.eval_path) == split_paths(tmp_path / "mixed")
    assert result.train_path.name == "mixed.train.jsonl" and result.eval == 6


def test_mix_is_deterministic_for_a_seed_and_changes_with_it(files, tmp_path):
    original, augmented = files
    runs = [mix_datasets(original, augmented, tmp_path / name, seed=seed)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    texts = [r.train_path.read_text() for r in runs]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_mix_does_not_depend_on_the_order_music_pairs_were_written(files, tmp_path):
    original, augmented = files
    lines = augmented.read_text().splitlines(keepends=True)
    reordered = tmp_path / "reordered.jsonl"
    reordered.write_text("".join(reversed(lines)))
    first = mix_datasets(original, augmented, tmp_path / "a", count=5, eval_fraction=0.2)
    second = mix_datasets(original, reordered, tmp_path / "b", count=5, eval_fraction=0.2)
    for ours, theirs in ((first.train_path, second.train_path), (first.eval_path, second.eval_path)):
        # identical rows; only meta.source_file names the other file
        assert theirs.read_text().replace(str(reordered), str(augmented)) == ours.read_text()


def test_mix_ratio_and_count_choose_how_many_music_pairs(files, tmp_path):
    original, augmented = files
    assert mix_datasets(original, augmented, tmp_path / "r", ratio=0.25).music_used == 5
    assert mix_datasets(original, augmented, tmp_path / "c", count=3).music_used == 3
    assert mix_datasets(original, augmented, tmp_path / "all", count=99).music_used == 11
    with pytest.raises(ConfigError):
        mix_datasets(original, augmented, tmp_path / "x", ratio=0.5, count=2)


def test_mix_cli_prints_counts(files, tmp_path, capsys):
    original, augmented = files
    code = main(["augment", "mix", "--original", str(original), "--augmented", str(augmented),
                 "-o", str(tmp_path / "m"), "--count", "4", "--seed", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "original 20 + MUSIC 4 (of 11)" in out and "m.train.jsonl" in out


def test_inspect_shows_branches_side_by_side_with_the_divergence_marked(files):
    _, augmented = files
    pair = load_pairs(augmented)[0]
    text = render_pair(pair, width=80)
    lines = text.splitlines()
    assert any("turn 2  <<< divergence" in line for line in lines)
    assert not any("turn 1  <<< divergence" in line for line in lines)
    assert any(line.startswith("USER: music 0 1") and " = " in line for line in lines)  # shared turn
    assert any("ASSISTANT: good 2" in line and " | " in line and "ASSISTANT: bad 2" in line for line in lines)
    assert max(len(line) for line in lines) <= 80


def test_inspect_wraps_long_messages_to_the_width():
    long = "word " * 100
    pair = PreferencePair.from_messages([{"role": "user", "content": long}, {"role": "assistant", "content": "a"}],
                                        [{"role": "user", "content": long}, {"role": "assistant", "content": "b"}])
    lines = render_pair(pair, width=60).splitlines()
    assert max(len(line) for line in lines) <= 60
    assert sum("word" in line for line in lines) > 5


def test_inspect_divergence_is_computed_when_meta_lacks_it():
    pair = PreferencePair.from_dict(pair_row("x", "q", turns=3, diverge_at=3))
    assert "turn 3  <<< divergence" in render_pair(pair)


def test_select_pair_by_id_and_index(files):
    pairs = load_pairs(files[1])
    assert select_pair(pairs, pair_id="music-o2").id == "music-o2"
    assert select_pair(pairs, index=1).id == "music-o1"
    with pytest.raises(ConfigError, match="no pair with id"):
        select_pair(pairs, pair_id="nope")
    with pytest.raises(ConfigError, match="out of range"):
        select_pair(pairs, index=50)


def test_stats_histograms_and_lengths(files):
    stats = pair_stats(load_pairs(files[1]))
    assert stats["pairs"] == 11
    assert stats["divergence_turn"] == {1: 1, 2: 10}
    assert stats["turns"] == {1: 1, 3: 10}
    text = render_stats(stats)
    assert "divergence turn:" in text and "    2  ####" in text


def test_inspect_cli_with_stats_and_bad_index(files, capsys):
    _, augmented = files
    assert main(["augment", "inspect", str(augmented), "--index", "2", "--stats", "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert "pair music-o2" in out and "pairs: 11" in out
    assert main(["augment", "inspect", str(augmented), "--index", "99"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_mix_with_hh_rlhf_fails_on_its_invalid_rows_or_skips_them(shared_data, files, tmp_path, capsys):
    from chat.errors import InputError

    hh = shared_data / "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz"
    with pytest.raises(InputError, match=":87: "):
        mix_datasets(hh, files[1], tmp_path / "fail")
    result = mix_datasets(hh, files[1], tmp_path / "skip", on_error="skip", eval_fraction=0.0)
    assert result.rejected == 4 and result.original == 1796
    assert result.train == 1796 + 11 - result.duplicates_removed
