"""chat/runner/fingerprint.py: settings of a run, the stored fingerprint, refusals and --overwrite."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pytest

from chat.backends.scripted import ScriptedBackend
from chat.errors import ConfigError
from chat.runner import backend_identities, check_settings, claim_output, config_settings, fingerprint_path, run
from chat.runner.fingerprint import describe_change, settings_hash


@dataclass
class Options:
    temperature: float = 0.0
    backends: dict = field(default_factory=lambda: {"judge": {"kind": "scripted"}})
    sampling: dict = field(default_factory=lambda: {"top_p": 0.9, "stop": ("\n",)})
    concurrency: int = 8
    limit: int | None = None


@dataclass
class Roles:
    judge: ScriptedBackend
    reviewers: list


def test_settings_hash_is_the_pipeline_stage_hash():
    payload = {"section": {"config": {"a": 1}}, "backends": {"x": {"kind": "local"}}, "layout": 2}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert settings_hash(payload) == expected


def test_config_settings_flatten_mappings_and_leave_out_run_knobs():
    assert config_settings("judge", Options()) == {"judge.temperature": 0.0, "judge.sampling.stop": ["\n"],
                                                   "judge.sampling.top_p": 0.9}


def test_backend_identities_of_a_mapping_and_of_a_roles_dataclass():
    one, two = ScriptedBackend(["x"], name="scripted:a"), ScriptedBackend(["x"], name="scripted:b")
    assert backend_identities({"judge": one, "none": None}) == {"backend.judge": "scripted:a"}
    assert backend_identities(Roles(one, [one, two])) == {"backend.judge": one.cache_identity,
                                                          "backend.reviewers.0": one.cache_identity,
                                                          "backend.reviewers.1": two.cache_identity}


def test_describe_change_names_one_setting_or_several(tmp_path):
    out = tmp_path / "v.jsonl"
    assert describe_change(out, {"a": 0.0, "b": "x"}, {"a": 0.7, "b": "x"}) == (
        f"{out} was written with a=0.0, this run has 0.7; pass --overwrite to start over or choose a new -o")
    assert describe_change(out, {"a": 1, "b": None}, {"a": 2, "c": True}) == (
        f"{out} was written with a=1, b=null, c=<unset>, this run has a=2, b=<unset>, c=true; pass --overwrite to "
        "start over or choose a new -o")


async def _echo(item: dict) -> dict:
    return {"value": item["value"]}


def test_a_run_resumes_with_the_same_settings_and_is_refused_with_others(tmp_path):
    out = tmp_path / "out.jsonl"
    items = [{"id": str(i), "value": i} for i in range(3)]
    claim_output(out, {"t": 0.0})
    stored = json.loads(fingerprint_path(out).read_text())
    assert stored == {"output": str(out), "hash": settings_hash({"t": 0.0}), "settings": {"t": 0.0}}
    run(items[:2], _echo, out, progress=False)
    claim_output(out, {"t": 0.0})
    assert run(items, _echo, out, progress=False).skipped_existing == 2
    before = out.read_bytes()
    with pytest.raises(ConfigError, match=r"was written with t=0\.0, this run has 0\.7;"):
        claim_output(out, {"t": 0.7})
    assert out.read_bytes() == before and json.loads(fingerprint_path(out).read_text())["settings"] == {"t": 0.0}


def test_an_output_without_records_takes_the_new_settings(tmp_path):
    out = tmp_path / "out.jsonl"
    claim_output(out, {"t": 0.0})
    out.write_bytes(b"")                                     # a run stopped before its first record
    claim_output(out, {"t": 0.7})
    assert json.loads(fingerprint_path(out).read_text())["settings"] == {"t": 0.7}


def test_records_in_any_sink_count_and_overwrite_removes_every_side_file(tmp_path):
    out = tmp_path / "out.jsonl"
    claim_output(out, {"t": 0.0}, sinks=("", ".seeds.jsonl"))
    side = [tmp_path / name for name in ("out.jsonl", "out.jsonl.errors.jsonl", "out.jsonl.summary.json",
                                         "out.jsonl.seeds.jsonl", "out.jsonl.seeds.jsonl.errors.jsonl",
                                         "out.jsonl.seeds.jsonl.summary.json")]
    for path in side:
        path.write_text("")
    side[3].write_text('{"id": "a", "kept": false}\n')     # only the seed log holds a finished item
    with pytest.raises(ConfigError, match="was written with t=0.0"):
        claim_output(out, {"t": 0.7}, sinks=("", ".seeds.jsonl"))
    (tmp_path / "unrelated.jsonl").write_text("keep me\n")
    claim_output(out, {"t": 0.7}, overwrite=True, sinks=("", ".seeds.jsonl"))
    assert not any(path.exists() for path in side)
    assert (tmp_path / "unrelated.jsonl").read_text() == "keep me\n"
    assert json.loads(fingerprint_path(out).read_text())["settings"] == {"t": 0.7}


def test_an_output_from_before_fingerprints_or_with_a_broken_one_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a"}\n')
    with pytest.raises(ConfigError, match=r"has no out\.jsonl\.fingerprint\.json .*pass --overwrite"):
        claim_output(out, {"t": 0.0})
    assert not fingerprint_path(out).exists()
    fingerprint_path(out).write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable fingerprint; pass --overwrite"):
        claim_output(out, {"t": 0.0})


def test_a_torn_output_with_its_fingerprint_resumes_as_before(tmp_path):
    out = tmp_path / "out.jsonl"
    claim_output(out, {"t": 0.0})
    run([{"id": "0", "value": 0}], _echo, out, progress=False)
    with out.open("ab") as file:
        file.write(b'{"id": "1", "va')
    claim_output(out, {"t": 0.0})
    summary = run([{"id": str(i), "value": i} for i in range(2)], _echo, out, progress=False)
    assert (summary.done, summary.skipped_existing) == (1, 1)
    assert out.read_text().splitlines() == ['{"id": "0", "value": 0}', '{"id": "1", "value": 1}']


def test_the_early_check_compares_only_the_settings_it_is_given_and_writes_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    check_settings(out, {"t": 0.0})
    assert not fingerprint_path(out).exists()
    claim_output(out, {"t": 0.0, "backend.judge": "scripted:a"})
    out.write_text('{"id": "a"}\n')
    check_settings(out, {"t": 0.0})                          # the backend identity is claim_output's to check
    with pytest.raises(ConfigError, match=r"^.* was written with t=0\.0, this run has 0\.7;"):
        check_settings(out, {"t": 0.7})
    with pytest.raises(ConfigError, match=r"backend\.judge=scripted:a, this run has scripted:b;"):
        claim_output(out, {"t": 0.0, "backend.judge": "scripted:b"})
