"""MUSIC's experiment protocol in `turnwise run`: D for the baseline and eval sets by kind (mix), two RMs with the
same steps (rm_train, resumable per RM), both RMs on every eval set (rm_eval), best-of-N (bon), and their
bookkeeping: skip when done, --from redo, config change refusal."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

import judge.bon_job
import pipeline.stages
import rm.model
import rm.train
from chat.backends.scripted import ScriptedBackend
from chat.errors import ConfigError
from pipeline.config import PipelineConfig
from pipeline.run import run_pipeline, stage_status
from pipeline.stages import (BASELINE_RM, EVAL_SETS, MUSIC_RM, StageContext, StageOutcome, run_mix, run_rm_eval,
                             run_rm_train)
from pipeline_helpers import REPO_ROOT, config_values, write_config

PROMPTS = str(REPO_ROOT / "configs" / "demo" / "seed_prompts.jsonl")


def messages(*texts: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(texts)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def original_pairs() -> list[dict]:
    """12 single-turn pairs and 8 multi-turn pairs that contrast the last turn only (as in Skywork)."""
    single = [{"id": f"s{i}", "chosen": messages(f"question {i}", f"good answer {i}"),
               "rejected": messages(f"question {i}", f"bad answer {i}")} for i in range(12)]
    multi = [{"id": f"m{i}", "chosen": messages(f"first {i}", f"reply {i}", f"second {i}", f"good answer {i}"),
              "rejected": messages(f"first {i}", f"reply {i}", f"second {i}", f"bad answer {i}")} for i in range(8)]
    return single + multi


def music_pairs(count: int = 10) -> list[dict]:
    return [{"id": f"music-{i}", "chosen": messages(f"seed {i}", f"good answer {i}", f"next {i}", f"good answer x{i}"),
             "rejected": messages(f"seed {i}", f"bad answer {i}", f"other {i}", f"bad answer x{i}"),
             "meta": {"source_id": f"s{i}", "divergence_turn": 1, "turns": 2}} for i in range(count)]


def protocol_values(tmp_path: Path, **sections) -> dict:
    values = config_values(tmp_path / "run")
    original = write_jsonl(tmp_path / "original.jsonl", original_pairs())
    values["mix"] = {"original": str(original), "eval_fraction": 0.5, "seed": 0}
    values["augment"]["config"]["turns"] = 2
    values["rm_train"] = {"config": {"model_config": {"model_type": "bert", "hidden_size": 32,
                                                      "intermediate_size": 64, "num_hidden_layers": 1,
                                                      "num_attention_heads": 2, "max_position_embeddings": 512},
                                     "tokenizer_name_or_path": "minilm", "max_length": 256,
                                     "per_device_train_batch_size": 4, "num_train_epochs": 2,
                                     "report_to": "none", "save_strategy": "no", "eval_strategy": "no"}}
    values.update(sections)
    return values


def context(tmp_path: Path, **sections) -> StageContext:
    return StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", protocol_values(tmp_path, **sections))),
                        progress=False)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mixed(ctx: StageContext) -> StageOutcome:
    write_jsonl(ctx.music_pairs, music_pairs())
    return run_mix(ctx)


# ----------------------------------------------------------------------------- mix

def test_mix_uses_the_paper_ratio_and_splits_d_for_the_baseline_and_the_eval_sets_by_kind(tmp_path):
    ctx = context(tmp_path)
    outcome = mixed(ctx)
    assert outcome.counts["music_used"] == round(0.42 * 20) == 8        # default ratio: 0.42 per original pair
    train, held_out = read_rows(ctx.train_split), read_rows(ctx.eval_split)
    baseline = read_rows(ctx.baseline_train_split)
    assert baseline == [row for row in train if row["meta"]["origin"] == "original"]
    assert len(train) - len(baseline) == sum(row["meta"]["origin"] == "music" for row in train) > 0
    sets = {name: read_rows(ctx.eval_set(name)) for name in EVAL_SETS}
    assert sorted(row["id"] for rows in sets.values() for row in rows) == sorted(row["id"] for row in held_out)
    assert all(row["meta"]["origin"] == "music" for row in sets["music"]) and sets["music"]
    assert {row["id"][0] for row in sets["multi_turn"]} == {"m"} and {row["id"][0] for row in sets["single_turn"]} == {"s"}
    assert outcome.counts["baseline_train"] == len(baseline)
    assert {name: outcome.counts[f"eval_{name}"] for name in EVAL_SETS} == {name: len(rows) for name, rows in sets.items()}


def test_mix_ratio_null_uses_every_music_pair_and_ratio_with_count_is_refused(tmp_path):
    values = protocol_values(tmp_path)
    values["mix"]["ratio"] = None
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)), progress=False)
    assert mixed(ctx).counts["music_used"] == 10
    values["mix"].update(ratio=0.5, count=3)
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "q.yaml", values)), progress=False)
    with pytest.raises(ConfigError, match="mix: give either ratio or count, not both"):
        mixed(ctx)


# ----------------------------------------------------------------------------- rm_train

class FakeTrainer:
    """Stands in for rm.train.train_reward_model: records each RM's config, can fail on one RM."""

    def __init__(self, fail_on: str | None = None):
        self.configs = []
        self.fail_on = fail_on

    def __call__(self, config):
        name = Path(config.output_dir).name
        if name == self.fail_on:
            self.fail_on = None
            raise KeyboardInterrupt
        self.configs.append(config)
        pairs = len(read_rows(Path(config.train_data)))
        return rm.train.TrainResult(Path(config.output_dir), config.max_steps, pairs, 0,
                                    truncation={"train": {"truncated_sequences": 0}}, train_tokens=10 * pairs,
                                    wall_seconds=1.0)


def test_both_rms_train_for_the_same_steps_on_their_own_data_and_a_resume_skips_the_trained_one(tmp_path,
                                                                                               monkeypatch):
    ctx = context(tmp_path)
    mixed(ctx)
    trainer = FakeTrainer(fail_on=MUSIC_RM)
    monkeypatch.setattr(rm.train, "train_reward_model", trainer)
    with pytest.raises(KeyboardInterrupt):          # killed while training the MUSIC RM
        run_rm_train(ctx)
    assert [Path(c.output_dir).name for c in trainer.configs] == [BASELINE_RM]
    outcome = run_rm_train(ctx)                    # the resumed stage trains only the MUSIC RM
    baseline, music = trainer.configs
    assert (Path(baseline.train_data), Path(music.train_data)) == (ctx.baseline_train_split, ctx.train_split)
    # 2 epochs x ceil(D_aug train / 4) steps, for both, although D is smaller
    steps = 2 * -(-len(read_rows(ctx.train_split)) // 4)
    assert baseline.max_steps == music.max_steps == steps == outcome.counts["max_steps"]
    assert outcome.counts["steps_from"].startswith("num_train_epochs 2 x")
    assert outcome.counts[BASELINE_RM]["train_pairs"] == len(read_rows(ctx.baseline_train_split))
    assert outcome.outputs == {BASELINE_RM: str(ctx.rm_dir(BASELINE_RM)), MUSIC_RM: str(ctx.rm_dir(MUSIC_RM))}
    truncation = outcome.counts["divergence_truncation"]
    assert truncation["max_length"] == 256 and truncation["music"]["lost"] == 0
    assert truncation["all"]["pairs"] == len(read_rows(ctx.train_split))


def test_a_recipe_max_steps_is_used_for_both_and_accelerate_needs_one(tmp_path, monkeypatch):
    values = protocol_values(tmp_path)
    values["rm_train"]["overrides"] = {"max_steps": 7}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)), progress=False)
    mixed(ctx)
    trainer = FakeTrainer()
    monkeypatch.setattr(rm.train, "train_reward_model", trainer)
    assert run_rm_train(ctx).counts["steps_from"] == "max_steps of the recipe"
    assert [c.max_steps for c in trainer.configs] == [7, 7]
    values["rm_train"] = {**values["rm_train"], "overrides": {}, "accelerate_config": "fsdp.yaml"}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "q.yaml", values)), progress=False)
    with pytest.raises(ConfigError, match="rm_train: set max_steps in the RM recipe"):
        run_rm_train(ctx)


# ----------------------------------------------------------------------------- rm_eval

class FakeRM:
    """Scores a conversation 1 when its last reply says `good`; the MUSIC RM also reads the first answer."""

    def __init__(self, path: str):
        self.name = ""
        self.music = Path(path).name == MUSIC_RM

    def score(self, conversations):
        def one(conversation):
            answers = [m.content for m in conversation.messages if m.role == "assistant"]
            score = float("good" in answers[-1])
            return score + (float("good" in answers[0]) if self.music else 0.0)
        return [one(c) for c in conversations]

    def score_pairs(self, pairs):
        return list(zip(self.score([p.chosen for p in pairs]), self.score([p.rejected for p in pairs])))


def test_rm_eval_scores_both_rms_on_every_set_and_rewardbench(tmp_path, monkeypatch):
    bench = write_jsonl(tmp_path / "rb.jsonl", [
        {"id": i, "prompt": f"q{i}", "chosen": "good", "rejected": "good too" if i % 2 else "bad",
         "subset": "alpacaeval-easy"} for i in range(6)])
    ctx = context(tmp_path, rm_eval={"bootstrap": 50, "rewardbench": str(bench)})
    mixed(ctx)
    monkeypatch.setattr(rm.model.RewardModel, "load", classmethod(lambda cls, path, device=None: FakeRM(path)))
    outcome = run_rm_eval(ctx)
    metrics = outcome.metrics
    assert set(metrics) == {*EVAL_SETS, "rewardbench"}
    for name in EVAL_SETS:
        assert set(metrics[name]) == {BASELINE_RM, MUSIC_RM}
        assert metrics[name][MUSIC_RM]["n"] == outcome.counts[name] == len(read_rows(ctx.eval_set(name)))
    assert metrics["single_turn"][BASELINE_RM]["accuracy"] == 1.0
    assert metrics["music"][BASELINE_RM]["accuracy"] == 1.0 and metrics["music"][MUSIC_RM]["accuracy"] == 1.0
    low, high = metrics["music"][MUSIC_RM]["ci95"]
    assert low <= 1.0 <= high
    # "good too" ties with "good" on half the items: RewardBench counts a tie as wrong
    assert metrics["rewardbench"][BASELINE_RM]["accuracy"] == 0.5
    assert metrics["rewardbench"][MUSIC_RM]["sections"]["Chat"] == 0.5
    assert Path(outcome.outputs["music_rewardbench"]).is_file()


# ----------------------------------------------------------------------------- bon

def seed_of(text: str) -> int:
    return int(re.search(r"answer (\d+)", text).group(1))


class SeedScorer:
    """The MUSIC RM prefers the highest-seed candidate, the baseline the lowest: their picks differ."""

    def __init__(self, path: str):
        self.name = Path(path).name
        self.sign = 1.0 if self.name == MUSIC_RM else -1.0

    def score(self, conversations):
        return [self.sign * seed_of(c.messages[-1].content) for c in conversations]


def scripted_backends(requests: list[str]):
    def policy(messages, params):
        requests.append("policy")
        return f"Here is answer {params['seed']} to {messages[-1]['content'][:30]}"

    def user(messages, params):
        requests.append("user")
        return f"Thanks, that helps. Could you give one more example for case {len(messages)}{params['seed']}?"

    def judge(messages, params):
        requests.append("judge")
        return "Both are fine. [[A]]"

    def build(section, ledger, cache_path):
        return {"policy": ScriptedBackend(policy), "user_sim": ScriptedBackend(user), "judge": ScriptedBackend(judge)}

    return build


BON = {"prompts": PROMPTS, "backends": {"policy": "llm", "user_sim": "llm", "judge": "llm"},
       "config": {"limit": 2, "turns": 2, "n_values": [2, 4], "max_tokens": 16, "concurrency": 2},
       "judge": {"judge": "llm-pairwise", "max_tokens": 16, "max_reasks": 0}}


@pytest.fixture
def fake_stages(monkeypatch):
    """Every stage but bon and report replaced by one that writes its marker output."""
    ran: list[str] = []

    def fake(stage):
        def run(ctx):
            ran.append(stage)
            ctx.stage_dir(stage).mkdir(parents=True, exist_ok=True)
            return StageOutcome()
        return run

    for stage in ("augment", "mix", "rm_train", "rm_eval", "judge", "generate"):
        monkeypatch.setitem(pipeline.stages.STAGE_FUNCTIONS, stage, fake(stage))
    monkeypatch.setattr(judge.bon_job, "load_reward_model", lambda path, device=None: SeedScorer(path))
    return ran


def test_bon_compares_the_music_rm_with_the_baseline_per_n_and_is_skipped_when_done(tmp_path, monkeypatch,
                                                                                    fake_stages):
    requests: list[str] = []
    monkeypatch.setattr(judge.bon_job, "build_backends", scripted_backends(requests))
    config = context(tmp_path, bon=BON).config
    assert run_pipeline(config, progress=False, say=lambda _: None) == 0
    marker = json.loads((config.run_dir / "bon" / "stage.json").read_text())
    assert marker["metrics"]["rm_a"] == MUSIC_RM and marker["metrics"]["rm_b"] == BASELINE_RM
    by_n = marker["metrics"]["by_n"]
    assert set(by_n) == {"2", "4"}
    for row in by_n.values():   # "[[A]]" in both orders is order-inconsistent: a tie, 0.5
        assert (row["n_prompts"], row["ties"], row["identical"], row["win_rate"]) == (2, 2, 0, 0.5)
    # per prompt: turn 1 samples 4 candidates once; the baseline picks candidate 0 for N=2 and N=4, so its two
    # trajectories share turn 2 (4 samples, one user turn); the MUSIC RM's do not (2 + 4 samples, two user
    # turns); 2 judge calls per N. The estimate's bound (every trajectory apart: 4 + 12, 4) is not reached.
    assert requests.count("policy") == 2 * (4 + 4 + 6) and requests.count("user") == 2 * 3
    assert requests.count("judge") == 2 * 2 * 2
    records = [json.loads(line) for line in (config.run_dir / "bon" / "conversations.jsonl").read_text().splitlines()]
    picks = records[0]["results"]["4"]
    assert [p["picked"] for p in picks["picks_a"]] == [3, 3] and [p["picked"] for p in picks["picks_b"]] == [0, 0]
    report = (config.run_dir / "report" / "report.md").read_text()
    assert "| 2 | 2 | 0 | 2 | 0 | 0 | 0 | 0.500 [" in report
    requests.clear()
    assert run_pipeline(config, progress=False, say=lambda _: None) == 0
    assert requests == []                             # done: skipped


def test_a_changed_bon_config_is_refused_until_from_bon_redoes_it(tmp_path, monkeypatch, fake_stages):
    requests: list[str] = []
    monkeypatch.setattr(judge.bon_job, "build_backends", scripted_backends(requests))
    assert run_pipeline(context(tmp_path, bon=BON).config, progress=False, say=lambda _: None) == 0
    changed = context(tmp_path, bon={**BON, "config": {**BON["config"], "n_values": [2]}}).config
    assert stage_status(changed, "bon") == "changed" and stage_status(changed, "rm_eval") == "done"
    with pytest.raises(ConfigError, match="stage bon of .* was run with a different configuration; rerun with "
                                          "--from bon"):
        run_pipeline(changed, progress=False, say=lambda _: None)
    fake_stages.clear()
    requests.clear()
    assert run_pipeline(changed, start="bon", progress=False, say=lambda _: None) == 0
    assert fake_stages == ["judge", "generate"] and requests.count("judge") == 2 * 2
    marker = json.loads((changed.run_dir / "bon" / "stage.json").read_text())
    assert set(marker["metrics"]["by_n"]) == {"2"}


def test_without_a_bon_section_the_stage_does_nothing_and_a_bad_one_is_named(tmp_path, fake_stages):
    config = context(tmp_path).config
    assert run_pipeline(config, progress=False, say=lambda _: None) == 0
    assert json.loads((config.run_dir / "bon" / "stage.json").read_text())["counts"] == {
        "skipped": "no bon section in the config"}
    bad = context(tmp_path, bon={**BON, "backends": {"policy": "llm", "judge": "llm"}})
    with pytest.raises(ConfigError, match=r"bon.backends.user_sim: missing"):
        pipeline.stages.run_bon(bad)
    bad = context(tmp_path, bon={**BON, "judge": {"judge": "rm"}})
    with pytest.raises(ConfigError, match=r"bon.judge.judge: the judge of two RMs' conversations cannot be an RM"):
        pipeline.stages.run_bon(bad)


def test_an_old_run_directory_shows_the_reshaped_stages_as_changed(tmp_path):
    config = context(tmp_path).config
    for stage in ("augment", "mix"):
        directory = config.run_dir / stage
        directory.mkdir(parents=True)
        payload = {"section": config.sections[stage], "backends": config.backends}    # the old fingerprint
        old = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        (directory / "stage.json").write_text(json.dumps({"fingerprint": old}))
    assert stage_status(config, "augment") == "done" and stage_status(config, "mix") == "changed"
