"""Pairs that lose their divergence turn to the RM's left truncation, counted with the trainer's encoder and a
real tokenizer (MiniLM's), and the MUSIC-budget vs max_length warning of the shipped configs."""

from __future__ import annotations

import pytest

from chat.conversation import PreferencePair
from pipeline.config import PipelineConfig
from pipeline.divergence import budget_warning, count_divergence_truncation, divergence_exchange
from pipeline.estimate import estimate_stage
from pipeline.stages import StageContext
from pipeline_helpers import REPO_ROOT

LONG = " ".join(["word"] * 25)


def turns(*texts, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(texts)]


def pair(pair_id, chosen, rejected, origin):
    return PreferencePair.from_dict({"id": pair_id, "chosen": chosen, "rejected": rejected,
                                     "meta": {"origin": origin}})


@pytest.fixture(scope="module")
def encoder():
    from transformers import AutoTokenizer

    from chat.embedded import resolve_model
    from rm.encoding import ConversationEncoder

    return ConversationEncoder(AutoTokenizer.from_pretrained(resolve_model("minilm")), max_length=40)


def test_divergence_exchange_is_the_first_differing_user_assistant_exchange():
    assert divergence_exchange(pair("a", turns("q", "a", "q2", "x"), turns("q", "a", "q2", "y"), "music")) == 1
    assert divergence_exchange(pair("b", turns("q", "x", "q2", "y"), turns("q", "z", "q3", "y"), "music")) == 0
    assert divergence_exchange(pair("c", turns("q", "x", system="s1"), turns("q", "x", system="s2"), "music")) == -1
    assert divergence_exchange(pair("d", turns("q", "x"), turns("q", "x"), "original")) is None


def test_pairs_that_lose_their_divergence_turn_are_counted_per_origin(encoder):
    pairs = [
        # diverges at turn 1, a long turn 2 on both sides: the encoder drops turn 1 on both sides
        pair("lost-both", turns("q one", "good a", "tell me more", LONG), turns("q one", "bad a", "tell me more",
                                                                                 LONG + " bad"), "music"),
        # only the rejected side is long enough to lose turn 1
        pair("lost-one", turns("q one", "good a", "more", "short reply"), turns("q one", "bad a", "more", LONG + " and more"),
             "music"),
        # diverges at the last turn, everything fits
        pair("kept", turns("q one", "a", "more", "good"), turns("q one", "a", "more", "bad"), "music"),
        # one long exchange: tokens are cut inside the divergence turn itself
        pair("cut", turns("q", LONG + " " + LONG), turns("q", "no"), "original"),
        pair("same", turns("q", "a"), turns("q", "a"), "original"),
    ]
    counts = count_divergence_truncation(pairs, encoder)
    music, original, total = (counts[k].to_dict() for k in ("music", "original", "all"))
    assert music == {"pairs": 3, "truncated": 2, "lost": 2, "lost_both": 1, "cut_inside": 0, "identical": 0,
                     "examples": ["lost-both", "lost-one"]}
    assert original == {"pairs": 2, "truncated": 1, "lost": 0, "lost_both": 0, "cut_inside": 1, "identical": 1,
                        "examples": []}
    assert (total["pairs"], total["lost"], total["cut_inside"]) == (5, 2, 1)


def test_the_budget_warning_compares_musics_cap_with_the_rms_max_length():
    from augment.config import MusicConfig

    music = MusicConfig(turns=3, max_tokens=100, user_max_tokens=50, max_conversation_tokens=4096)
    assert budget_warning(music, 400) is None                     # 3 x 100 + 2 x 50
    warning = budget_warning(music, 256)
    assert warning.startswith("MUSIC conversations may reach ~400 tokens besides their seed turns (T=3 answers of "
                              "max_tokens 100, user turns of 50, max_conversation_tokens 4096) but the RMs read "
                              "max_length 256 tokens")
    assert budget_warning(MusicConfig(turns=3, max_tokens=100, max_conversation_tokens=200), 256) is None


@pytest.mark.parametrize("name", ["demo", "paper-gemma2-9b"])
def test_the_shipped_configs_fit_musics_conversations_into_the_rm(name):
    ctx = StageContext(PipelineConfig.load(REPO_ROOT / "configs" / "pipeline" / f"{name}.yaml"))
    note = estimate_stage(ctx, "rm_train").note
    assert note.startswith("no LLM calls; baseline and MUSIC RM, ") and "WARNING" not in note
