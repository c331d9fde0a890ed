"""The run report: stage table, which-model labels, RM accuracy, agreement and generation tables, plots,
sample MUSIC pairs and generated conversations."""

from __future__ import annotations

import json

from pipeline.config import PipelineConfig
from pipeline.report import SMALL_MODELS, model_notes, pair_lines, write_report
from pipeline.stages import StageContext
from pipeline_helpers import config_values, write_config


def marker(stage, run, **fields):
    directory = run / stage
    directory.mkdir(parents=True, exist_ok=True)
    values = {"stage": stage, "wall_s": 1.5, "outputs": {}, "counts": {}, "usage": {}, "metrics": {}, **fields}
    (directory / "stage.json").write_text(json.dumps(values))


def test_report_of_a_finished_run(tmp_path):
    run = tmp_path / "run"
    values = config_values(run)
    values["rm_train"] = {"config": {"model_name_or_path": "minilm"}}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    marker("augment", run, outputs={"pairs": str(run / "augment" / "pairs.jsonl")},
           counts={"inputs": 10, "unit": "seeds", "kept_total": 4, "dropped_this_run": {"parse_failure": 6},
                   "carried_over": 0},
           usage={"llm_calls": 80, "cache_hits": 5, "prompt_tokens": 9000, "completion_tokens": 2000})
    marker("rm_train", run, counts={
        "max_steps": 12, "steps_from": "max_steps of the recipe",
        "baseline": {"global_step": 12, "train_pairs": 40, "truncated_sequences": 1},
        "music": {"global_step": 12, "train_pairs": 50, "truncated_sequences": 3},
        "divergence_truncation": {"max_length": 128,
                                  "music": {"pairs": 10, "truncated": 4, "lost": 2, "lost_both": 1, "cut_inside": 1},
                                  "original": {"pairs": 40, "truncated": 0, "lost": 0, "lost_both": 0,
                                               "cut_inside": 0}}},
        metrics={"music": {"tokens_per_second": 812.0, "train_loss": 0.61},
                 "baseline": {"tokens_per_second": 790.0, "train_loss": 0.65},
                 "budget_warning": "MUSIC conversations may reach ~900 tokens"})
    accuracy = {"baseline": {"accuracy": 0.5, "ci95": [0.25, 0.75], "n": 4, "baselines": {"prefer_longer": 0.5}},
                "music": {"accuracy": 0.75, "ci95": [0.5, 1.0], "n": 4, "baselines": {"prefer_longer": 0.5}}}
    marker("rm_eval", run, metrics={"multi_turn": {}, "music": accuracy, "single_turn": accuracy,
                                    "rewardbench": {"baseline": {"n": 6, "accuracy": 0.5, "ci95": [0.25, 0.75],
                                                                 "sections": {"Chat": 0.9, "Score": 0.8}},
                                                    "music": {"n": 6, "accuracy": 0.75, "ci95": [0.5, 1.0],
                                                              "sections": {"Chat": 0.95, "Score": 0.85}}}})
    marker("bon", run, counts={"prompts": 4, "turns": 2},
           metrics={"by_n": {"4": {"n_prompts": 4, "wins": 2, "ties": 1, "losses": 1, "unparseable": 0,
                                   "identical": 1, "win_rate": 0.625, "ci": [0.25, 1.0]},
                             "2": {"n_prompts": 4, "wins": 1, "ties": 2, "losses": 1, "unparseable": 0,
                                   "identical": 2, "win_rate": 0.5, "ci": [0.125, 0.875]}}})
    agreement = {"accuracy": 0.625, "accuracy_ci": [0.4, 0.8], "kappa": 0.2}
    marker("judge", run, metrics={"rm-vs-labels": {"counts": {"matched": 16, "compared": 16}, "agreement": agreement},
                                  "llm-vs-rm": {"counts": {"matched": 16, "compared": 0, "unparseable_a": 16},
                                                "agreement": None}})
    marker("generate", run, counts={"sedi": {"inputs": 2, "unit": "iterations", "kept_total": 7}},
           metrics={"sedi": {"distinct_2": 0.9, "rm_score": {"mean": -0.25}}})

    outcome = write_report(ctx)
    text = (run / "report" / "report.md").read_text()
    assert "> - unit test" in text
    assert ("> - MUSIC pairs, LLM-judge verdicts, Review-Instruct conversations, SeDi instructions: "
            "Qwen2.5-Coder-0.5B-Instruct, a 0.5B instruct model") in text
    assert ("> - Reward models, baseline and MUSIC RM (RM accuracy, best-of-N picks; the MUSIC RM as RM judge, RM "
            "reviewer and filter of generation): all-MiniLM-L6-v2") in text
    assert "Gemma 3 270M" not in text
    assert "| augment | 1.5 | `augment/pairs.jsonl` | 80 | 5 | 9000 | 2000 | no |" in text
    assert "kept 4 from 10 seeds (dropped in the completing run: parse_failure 6" in text
    assert "Both RMs: one recipe and seed, 12 optimizer steps (max_steps of the recipe)." in text
    assert "- baseline RM (D): 12 steps on 40 pairs, 1 sequences truncated" in text
    assert "- MUSIC RM (D_aug): 12 steps on 50 pairs, 3 sequences truncated" in text
    assert "| music | 10 | 4 | 2 | 1 | 1 |" in text and "| original | 40 | 0 | 0 | 0 | 0 |" in text
    assert "**Warning:** MUSIC conversations may reach ~900 tokens." in text
    assert "| D held-out, multi-turn (last-turn contrast) | 0 | none in this run | | | |" in text
    assert ("| MUSIC held-out | 4 | 0.500 [0.250, 0.750] | 0.750 [0.500, 1.000] | +0.250 | 0.500 |") in text
    assert "| D held-out, single-turn | 4 |" in text
    assert "| RewardBench | 6 | 0.500 [0.250, 0.750] | 0.750 [0.500, 1.000] | +0.250 | n/a |" in text
    assert "| Chat | 0.900 | 0.950 |" in text and "| Score | 0.800 | 0.850 |" in text
    bon = text[text.index("## Multi-turn best-of-N"):]
    assert "4 first prompts, 2 turns" in bon
    assert bon.index("| 2 | 4 | 1 | 2 | 1 | 0 | 2 | 0.500 [0.125, 0.875] |") < bon.index(
        "| 4 | 4 | 2 | 1 | 1 | 0 | 1 | 0.625 [0.250, 1.000] |")
    assert "| rm-vs-labels | 16 | 16 | 0 / 0 | 0.625 [0.400, 0.800] | 0.200 |" in text
    assert "| llm-vs-rm | 16 | 0 | 16 / 0 | n/a (nothing comparable) | n/a |" in text
    assert "- sedi: kept 7 from 2 iterations" in text and "| sedi | 7 | 0.900 | n/a | n/a | -0.250 |" in text
    assert (run / "report" / "stages.png").stat().st_size > 1000
    summary = json.loads((run / "report" / "report.json").read_text())
    assert set(summary["stages"]) == {"augment", "rm_train", "rm_eval", "bon", "judge", "generate"}
    assert outcome.outputs["markdown"] == str(run / "report" / "report.md")


def test_a_random_tiny_rm_is_labelled_as_noise(tmp_path):
    values = config_values(tmp_path / "run")
    values["backends"]["llm"]["model"] = "/models/gemma-2-9b-it"
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    write_report(ctx)
    text = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "randomly initialised tiny gemma2 model" in text and "Qwen2.5-Coder" not in text
    assert "## Sample MUSIC pairs" not in text and "## Sample generated conversations" not in text  # no stages ran


def test_a_generate_stage_that_kept_nothing_says_so(tmp_path):
    run = tmp_path / "run"
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(run))))
    write_jsonl(run / "generate" / "sedi.jsonl", [])
    marker("generate", run, outputs={"sedi": str(run / "generate" / "sedi.jsonl")}, counts={"sedi": {"kept_total": 0}})
    write_report(ctx)
    text = (run / "report" / "report.md").read_text()
    assert ("## Sample generated conversations\n\nNone: no generator kept a conversation (see *Generation with "
            "the RM* for why).") in text


def test_the_label_block_names_each_stages_model(tmp_path):
    values = config_values(tmp_path / "run")
    values["backends"]["big"] = {"kind": "local", "model": "qwen2.5-coder-1.5b-instruct"}
    values["judge"]["config"]["backends"] = {"judge": "big"}
    values["generate"]["sedi"]["backends"] = {"default": {"kind": "local", "model": "gemma3-270m"}}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    assert model_notes(ctx)[:3] == [
        f"MUSIC pairs, Review-Instruct conversations: {SMALL_MODELS['qwen2.5-coder-0.5b-instruct']}.",
        f"LLM-judge verdicts: {SMALL_MODELS['qwen2.5-coder-1.5b-instruct']}.",
        f"SeDi instructions: {SMALL_MODELS['gemma3-270m']}."]


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def turns(*texts, roles=("user", "assistant")):
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


def music_pair(seed, d, chosen, rejected, swaps):
    return {"id": f"music-{seed}", "chosen": turns(*chosen), "rejected": turns(*rejected),
            "meta": {"source_id": seed, "divergence_turn": d, "turns": 2,
                     "swaps": [{"turn": t, "original": "o", "swapped": s} for t, s in swaps]}}


def test_the_report_shows_two_music_pairs_and_two_generated_conversations_in_full(tmp_path):
    run = tmp_path / "run"
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(run))))
    pairs = run / "augment" / "pairs.jsonl"
    write_jsonl(pairs, [
        music_pair("s3", 1, ["Q1", "good A1", "Q2", "good A2"], ["Q1", "wrong A1", "Q2'", "wrong A2"],
                   [(1, "Q1 swapped"), (2, "Q2 swapped")]),
        music_pair("s1", 2, ["Q1", "A1", "Q2", "good A2"], ["Q1", "A1", "Q2", "wrong A2"], [(2, "Q2 swapped")]),
        music_pair("s2", 2, ["Q1", "A1", "Q2", "x"], ["Q1", "A1", "Q2", "y"], [(2, "other")])])
    generated = {"review_instruct": run / "generate" / "review_instruct.jsonl", "sedi": run / "generate" / "sedi.jsonl"}
    write_jsonl(generated["review_instruct"], [
        {"id": "ri-b", "messages": turns("RI Q1", "RI A1", "RI Q2", "```python\nprint(1)\n```"),
         "meta": {"rm_turn_scores": [0.5, -1.25]}},
        {"id": "ri-a", "messages": turns("first Q", "first A"), "meta": {}}])
    write_jsonl(generated["sedi"], [{"id": "sedi-1", "messages": turns("S Q", "S A"), "meta": {"rm_score": 2.0}}])
    marker("augment", run, outputs={"pairs": str(pairs)}, counts={"kept_total": 3})
    marker("generate", run, outputs={name: str(path) for name, path in generated.items()},
           counts={"review_instruct": {"kept_total": 2}, "sedi": {"kept_total": 1}})
    write_report(ctx)
    text = (run / "report" / "report.md").read_text()
    samples = text[text.index("## Sample MUSIC pairs"):]
    pair_1 = samples[samples.index("### Pair 1: `music-s1`"):samples.index("### Pair 2")]
    assert pair_1.startswith("### Pair 1: `music-s1` (seed `s1`, divergence at turn 2 of 2)\n\nBoth branches:\n\n"
                             "**turn 1 · user**\n\n> Q1\n\n**turn 1 · assistant**\n\n> A1\n\n"
                             "**turn 2 · user**\n\n> Q2\n\n")
    assert ("**Chosen branch, from the divergence on:**\n\n**turn 2 · assistant ◀ divergence (turn 2)**\n\n"
            "> good A2\n\n**Rejected branch, from the divergence on:**\n\n**turn 2 · assistant ◀ divergence "
            "(turn 2) — answers the swapped instruction “Q2 swapped”**\n\n> wrong A2\n\n") in pair_1
    pair_2 = samples[samples.index("### Pair 2"):samples.index("## Sample generated conversations")]
    assert pair_2.startswith("### Pair 2: `music-s3` (seed `s3`, divergence at turn 1 of 2)")  # another d
    assert "Both branches:\n\n**turn 1 · user**\n\n> Q1" in pair_2 and "> Q2'" in pair_2
    assert "**turn 2 · assistant — answers the swapped instruction “Q2 swapped”**\n\n> wrong A2" in pair_2
    assert "music-s2" not in samples
    conversations = samples[samples.index("## Sample generated conversations"):]
    assert ("### Conversation 1: `ri-a` (review-instruct, 1 user turn)\n\n**turn 1 · user**\n\n> first Q\n\n"
            "**turn 1 · assistant**\n\n> first A\n\n") in conversations
    assert ("### Conversation 2: `sedi-1` (sedi, 1 user turn, RM score 2.00)\n\n**turn 1 · user**\n\n> S Q\n\n"
            "**turn 1 · assistant**\n\n> S A\n") in conversations
    assert "ri-b" not in conversations


def test_a_branch_that_reuses_the_seed_answer_and_a_multi_line_reply_render_as_quotes():
    pair = music_pair("s", 1, ["Q", "good"], ["Q", "line one\n\n```\ncode\n```"], [])
    pair["meta"]["swaps"] = [{"turn": 1, "original": "Q", "swapped": None}]
    text = "\n".join(pair_lines(pair, 1))
    assert ("**turn 1 · assistant ◀ divergence (turn 1) — the seed pair's own rejected answer**\n\n"
            "> line one\n>\n> ```\n> code\n> ```\n") in text


def test_judge_and_generate_left_out_of_the_config_have_no_sections_in_the_report(tmp_path):
    run = tmp_path / "run"
    values = config_values(run)
    del values["judge"], values["generate"]
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    marker("judge", run, counts={"skipped": "no judge section in the config"})
    marker("generate", run, counts={"skipped": "no generate section in the config"})
    write_report(ctx)
    text = (run / "report" / "report.md").read_text()
    assert "## Judges" not in text and "## Generation with the RM" not in text
    assert "| judge | - | skipped: no judge section in the config | - | - | - | - | - |" in text
