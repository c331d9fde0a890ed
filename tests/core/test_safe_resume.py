"""Safe resume in every standalone command: same settings resume, other settings are refused in one line with
exit 2 and nothing written, --overwrite starts over, outputs without a fingerprint are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli import main
from chat.runner import fingerprint_path, read_records

SWAP = json.dumps({"swapped_instruction": "Describe a sunrise instead.", "reason": "different scene"})
SCRIPTED = json.dumps({"default": {"kind": "scripted", "replies": ["x"]}})


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    """Three single-turn preference pairs."""
    rows = []
    for i, (good, bad) in enumerate([("4", "five"), ("Paris", "Lyon"), ("blue", "green")]):
        prompt = {"role": "user", "content": f"question {i}"}
        rows.append({"id": f"p{i}", "chosen": [prompt, {"role": "assistant", "content": good}],
                     "rejected": [prompt, {"role": "assistant", "content": bad}]})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def refusal(output: Path, old: str, new: str) -> str:
    return (f"turnwise: error: {output} was written with {old}, this run has {new}; pass --overwrite to start over "
            "or choose a new -o\n")


def legacy_refusal(output: Path) -> str:
    return (f"turnwise: error: {output} has no {output.name}.fingerprint.json (written before turnwise recorded run "
            "settings), so resuming it could mix settings; pass --overwrite to start over or choose a new -o\n")


# ----------------------------------------------------------------------------- augment music

def test_augment_music_resumes_refuses_changed_settings_and_overwrites(tmp_path, capsys):
    config = {"backends": {"simulator": {"kind": "scripted", "replies": [SWAP] * 10}}, "turns": 1,
              "divergence": "final"}
    (tmp_path / "music.yaml").write_text(yaml.safe_dump(config))
    seed = {"id": "a", "messages": [{"role": "user", "content": "Hi"}]}
    (tmp_path / "seeds.jsonl").write_text(json.dumps(seed) + "\n")
    output = tmp_path / "out.jsonl"
    base = ("augment", "music", "--input", tmp_path / "seeds.jsonl", "-o", output, "--config", tmp_path / "music.yaml")
    code, out, err = cli(capsys, *base)
    assert code == 0, err
    stored = json.loads(fingerprint_path(output).read_text())
    assert stored["settings"]["augment.temperature"] == 0.7 and len(stored["hash"]) == 16
    assert stored["settings"]["backend.user"] == "scripted:embedded" and "augment.prompt_version" in stored["settings"]
    assert "augment.concurrency" not in stored["settings"] and "augment.limit" not in stored["settings"]

    code, out, err = cli(capsys, *base, "--concurrency", "2")          # a run knob: same fingerprint
    assert code == 0 and "0 new records, 1 already done" in out, err

    before = snapshot(tmp_path)
    code, out, err = cli(capsys, *base, "--temperature", "0.3")
    assert (code, err) == (2, refusal(output, "augment.temperature=0.7", "0.3"))
    assert snapshot(tmp_path) == before

    code, out, err = cli(capsys, *base, "--temperature", "0.3", "--overwrite")
    assert code == 0 and "1 new records, 0 already done" in out, err
    assert json.loads(fingerprint_path(output).read_text())["settings"]["augment.temperature"] == 0.3


# ----------------------------------------------------------------------------- judge pairs / grade

def judge_backends(replies: list[str]) -> str:
    return json.dumps({"judge": {"kind": "scripted", "replies": replies}})


def test_judge_pairs_resumes_refuses_changed_settings_and_overwrites(tmp_path, capsys, pairs_file):
    output = tmp_path / "verdicts.jsonl"
    base = ("judge", "pairs", "--input", pairs_file, "-o", output, "--no-progress", "--concurrency", "1")
    code, _, err = cli(capsys, *base, "--backends", judge_backends(["[[A]]", "[[B]]"] * 3))
    assert code == 0, err
    settings = json.loads(fingerprint_path(output).read_text())["settings"]
    assert settings["judge.name"] == "llm-pairwise:scripted:embedded:v1:text" and settings["judge.temperature"] == 0.0

    code, out, err = cli(capsys, *base, "--backends", judge_backends([]))
    assert code == 0 and "0 new records, 3 already done" in out, err

    files = snapshot(tmp_path)
    code, _, err = cli(capsys, *base, "--backends", judge_backends([]), "--temperature", "0.7")
    assert (code, err) == (2, refusal(output, "judge.temperature=0.0", "0.7"))
    assert snapshot(tmp_path) == files

    # a changed config value is refused before the backend is built (this model does not exist)
    missing_model = json.dumps({"judge": {"kind": "local", "model": str(tmp_path / "no-such-model")}})
    code, _, err = cli(capsys, *base, "--backends", missing_model, "--temperature", "0.7")
    assert (code, err) == (2, refusal(output, "judge.temperature=0.0", "0.7"))

    code, _, err = cli(capsys, *base, "--backends", judge_backends([]), "--verdict-mode", "logprob")
    assert (code, err) == (2, refusal(output, "judge.verdict_mode=text", "logprob"))
    # another backend: its identity and the judge's name are part of the fingerprint
    other = json.dumps({"judge": {"kind": "scripted", "model": "other", "replies": []}})
    code, _, err = cli(capsys, *base, "--backends", other)
    assert (code, err) == (2, refusal(output, "backend.judge=scripted:embedded, judge.name=llm-pairwise:scripted:"
                                              "embedded:v1:text", "backend.judge=scripted:other, judge.name="
                                                                  "llm-pairwise:scripted:other:v1:text"))

    code, out, err = cli(capsys, *base, "--backends", judge_backends(["[[B]]", "[[A]]"] * 3), "--temperature", "0.7",
                         "--overwrite")
    assert code == 0 and "3 new records, 0 already done" in out, err
    assert {r["winner"] for r in read_records(output)} == {"B"}


def test_judge_pairs_torn_output_still_resumes_and_refusal_leaves_it_alone(tmp_path, capsys, pairs_file):
    output = tmp_path / "verdicts.jsonl"
    base = ("judge", "pairs", "--input", pairs_file, "-o", output, "--no-progress", "--concurrency", "1")
    assert cli(capsys, *base, "--limit", "2", "--backends", judge_backends(["[[A]]"] * 4))[0] == 0
    with output.open("ab") as file:
        file.write(b'{"id": "p2", "win')                  # a run killed in the middle of a line
    torn = output.read_bytes()
    code, _, err = cli(capsys, *base, "--backends", judge_backends([]), "--max_reasks", "0")
    assert code == 2 and output.read_bytes() == torn
    code, out, err = cli(capsys, *base, "--backends", judge_backends(["[[A]]"] * 2))
    assert code == 0 and "1 new records, 2 already done" in out, err
    assert [r["id"] for r in read_records(output)] == ["p0", "p1", "p2"]


def test_judge_grade_resumes_refuses_changed_settings_and_overwrites(tmp_path, capsys, pairs_file):
    output = tmp_path / "grades.jsonl"
    base = ("judge", "grade", "--input", pairs_file, "-o", output, "--no-progress")
    code, _, err = cli(capsys, *base, "--backends", judge_backends(["Rating: [[7]]"] * 6))
    assert code == 0, err
    code, out, err = cli(capsys, *base, "--backends", judge_backends([]))
    assert code == 0 and "0 new records, 6 already done" in out, err
    files = snapshot(tmp_path)
    code, _, err = cli(capsys, *base, "--backends", judge_backends([]), "--max_tokens", "64")
    assert (code, err) == (2, refusal(output, "judge.max_tokens=512", "64"))
    assert snapshot(tmp_path) == files
    code, out, err = cli(capsys, *base, "--backends", judge_backends(["Rating: [[3]]"] * 6), "--max_tokens", "64",
                         "--overwrite")
    assert code == 0 and "6 new records, 0 already done" in out, err
    assert {r["score"] for r in read_records(output)} == {3}


def test_output_written_before_fingerprints_is_refused_until_overwrite(tmp_path, capsys, pairs_file):
    output = tmp_path / "verdicts.jsonl"
    output.write_text(json.dumps({"id": "p0", "winner": "A", "judge": "llm-pairwise:scripted:embedded:v1:text"}) + "\n")
    base = ("judge", "pairs", "--input", pairs_file, "-o", output, "--no-progress", "--concurrency", "1")
    code, _, err = cli(capsys, *base, "--backends", judge_backends([]))
    assert (code, err) == (2, legacy_refusal(output))
    assert not fingerprint_path(output).exists()
    code, out, err = cli(capsys, *base, "--backends", judge_backends(["[[A]]"] * 6), "--overwrite")
    assert code == 0 and "3 new records, 0 already done" in out, err


# ----------------------------------------------------------------------------- generators

GENERATORS = {
    # command, input option, the sink that holds finished items, a finished item's record there
    "review-instruct": ("--seeds", ".seeds.jsonl", {"id": "s1", "kept": False, "dropped": "test"}),
    "sedi": ("--seeds", ".iterations.jsonl", {"id": "iteration-0", "iteration": 0}),
    "coevol": ("--input", "", {"id": "s1", "messages": [{"role": "user", "content": "Hi"},
                                                        {"role": "assistant", "content": "Hello"}], "meta": {}}),
    "mimg": ("--docs", ".qas.jsonl", {"id": "d1#0", "doc_id": "d1", "question_failure": "test", "usage": {}}),
}


@pytest.mark.parametrize("command", sorted(GENERATORS))
def test_generators_resume_refuse_changed_settings_and_overwrite(command, tmp_path, capsys):
    option, sink, finished = GENERATORS[command]
    if option == "--docs":
        source = tmp_path / "docs.jsonl"
        source.write_text(json.dumps({"id": "d1", "content": "The Nile is a long river in Africa."}) + "\n")
    else:
        source = tmp_path / "seeds.jsonl"
        source.write_text(json.dumps({"id": "s1", "instruction": "Write a haiku about rain.",
                                      "output": "Rain falls softly."}) + "\n")
    output = tmp_path / "out.jsonl"
    base = ("generate", command, option, source, "-o", output, "--backends", SCRIPTED,
            # sedi without feedback: the scripted backend returns no logprobs for the default loss signal
            *(("--iterations", "1", "--feedback_signal", "rm") if command == "sedi" else ()))
    (tmp_path / f"out.jsonl{sink}").write_text(json.dumps(finished) + "\n")
    code, _, err = cli(capsys, *base)
    assert (code, err) == (2, legacy_refusal(output))

    code, _, err = cli(capsys, *base, "--overwrite")        # the scripted "x" fails the item: errors, no records
    assert code == 1 and not (tmp_path / f"out.jsonl{sink}").read_text()
    settings = json.loads(fingerprint_path(output).read_text())["settings"]
    assert settings["generate.seed"] == 0 and settings["generate.prompt_version"]
    assert all(value == "scripted:embedded" for key, value in settings.items() if key.startswith("backend."))
    # an item finished by that run (what a working backend would have written)
    (tmp_path / f"out.jsonl{sink}").write_text(json.dumps(finished) + "\n")

    code, out, err = cli(capsys, *base, "--concurrency", "3")
    assert code == 0 and "0 new records, 1 already done" in out, err

    files = snapshot(tmp_path)
    code, _, err = cli(capsys, *base, "--seed", "1")
    assert (code, err) == (2, refusal(output, "generate.seed=0", "1"))
    assert snapshot(tmp_path) == files

    code, _, err = cli(capsys, *base, "--seed", "1", "--overwrite")
    assert code == 1 and json.loads(fingerprint_path(output).read_text())["settings"]["generate.seed"] == 1
    assert not (tmp_path / f"out.jsonl{sink}").read_text()


# ----------------------------------------------------------------------------- rm score

def test_rm_score_checks_the_fingerprint_before_loading_the_model(tmp_path, capsys, pairs_file):
    from app.cli import build_parser
    from chat.runner import claim_output
    from rm.cli import score_settings

    output = tmp_path / "scores.jsonl"
    base = ("rm", "score", "--model", tmp_path / "no-such-model", "--input", pairs_file, "-o", output, "--no-progress")
    finished = json.dumps({"id": "p0", "chosen_reward": 1.0, "rejected_reward": 0.0}) + "\n"
    output.write_text(finished)
    code, _, err = cli(capsys, *base)
    assert (code, err) == (2, legacy_refusal(output))

    code, _, err = cli(capsys, *base, "--overwrite")          # the model cannot load: nothing is removed or claimed
    assert code == 2 and "no-such-model" in err and output.read_text() == finished
    assert not fingerprint_path(output).exists()

    output.unlink()                                          # the output of a run whose model loaded
    claim_output(output, score_settings(build_parser().parse_args([str(a) for a in base])))
    output.write_text(finished)
    files = snapshot(tmp_path)
    code, _, err = cli(capsys, *base, "--per-turn")
    assert (code, err) == (2, refusal(output, "rm.per_turn=false", "true"))
    assert snapshot(tmp_path) == files

    code, _, err = cli(capsys, *base, "--batch-size", "8")  # a run knob: the check passes, the model load fails
    assert code == 2 and "no-such-model" in err and "written with" not in err
    assert snapshot(tmp_path) == files
