"""Content filters for generated turns: degenerate text, prompt scaffolding, swap reveals and repeated turns.

Each filter returns its drop-reason name (a module constant, counted in outcome logs) or None when the text
passes. They are cheap, deterministic checks of small models' typical failures (docs/methods.md, MUSIC step 6;
shared by every generator that keeps or drops turns): loops ("In the In
the ..."), echoed prompt text ("Conversation so far:"), an assistant telling the user that the request was
changed, and a turn that copies the one before it.
"""

from __future__ import annotations

import re
from collections import Counter

DEGENERATE = "degenerate_text"
SCAFFOLDING = "scaffolding_text"
REVEALS_SWAP = "reveals_swap"
REPEATED_TURN = "repeated_turn"
#: the drop reason of an agent step whose reply never parsed (chat.agents re-asks it first)
PARSE_FAILURE = "parse_failure"

#: texts with fewer word tokens than this are too short for the repetition statistics ("No no no." is fine)
MIN_TOKENS_FOR_REPETITION = 8
#: below that, a text of at least this many tokens that repeats one token only is still degenerate ("1 1 1 1")
MIN_TOKENS_FOR_ONE_TOKEN_LOOP = 4
#: degenerate when one line fills more than `MAX_TOP_LINE_SHARE` of at least `MIN_LINES_FOR_REPETITION`
#: non-empty lines ("I\nI\nI\nI\nI")
MIN_LINES_FOR_REPETITION = 4
MAX_TOP_LINE_SHARE = 0.5
#: degenerate when one word token makes up more than this share of all word tokens ("1 1 1 1 ...")
MAX_TOP_TOKEN_SHARE = 0.5
#: n of the distinct-n statistic
DISTINCT_N = 3
#: degenerate when distinct n-grams / all n-grams is below this ("In the In the In the ...")
MIN_DISTINCT_N_RATIO = 0.3
#: degenerate when any span of up to `MAX_LOOP_PERIOD` tokens repeats back to back this many times
MIN_LOOP_REPEATS = 8
MAX_LOOP_PERIOD = 8
#: texts with fewer non-space characters than this skip the charset check ("42", "ok")
MIN_CHARS_FOR_CHARSET = 20
#: degenerate when letters and digits (any script) are fewer than this share of non-space characters
MIN_WORD_CHAR_SHARE = 0.3
#: degenerate at this many U+FFFD replacement characters (broken decoding)
MAX_REPLACEMENT_CHARS = 1

#: repeated when the normalized-token sets overlap at least this much (Jaccard)
REPEAT_JACCARD = 0.8
#: repeated when ROUGE-L F1 of the normalized tokens is at least this
REPEAT_ROUGE_L = 0.8
#: repeated when a turn of at least `REPEAT_MIN_COPY_TOKENS` tokens is this much a subsequence of the previous
REPEAT_CONTAINMENT = 0.9
REPEAT_MIN_COPY_TOKENS = 8
#: tokens of each turn compared by ROUGE-L (bounds its quadratic cost)
REPEAT_MAX_TOKENS = 400

_WORD = re.compile(r"\w+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

_ROLE = r"(?:user|assistant|human|system)"
_SPEAKER = r"(?:user|assistant|human)"  # "System:" opens ordinary lines too ("System: Ubuntu 22.04")
#: meta-text a simulated user turn must not contain (echoed prompt scaffolding, role labels, role talk)
SCAFFOLDING_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"conversation (so far|history|above|below)",
    r"here(?:'s| is) (?:the|my|your) next (?:user )?(?:message|turn|reply)",
    r"here(?:'s| is) (?:a|an|the|my) (?:possible |natural |realistic |suitable )?"
    r"(?:follow[- ]up|next|new) (?:user )?(?:question|message|reply|response|turn)\b",
    r"\bnext (?:user )?message\s*:",
    r"^\W{0,4}" + _SPEAKER + r"\W{0,4}:",
    r"\[/?" + _ROLE + r"\]",
    r"<\|?/?(?:im_start|im_end|start_of_turn|end_of_turn|eot_id|endoftext)\|?>",
    r"\bas the user\b",
    r"\b(?:simulated|simulating|simulate) (?:the |a )?user\b",
    r"\buser simulator\b",
    r"\b(?:play|playing|role[- ]?play(?:ing)?)(?: as)? (?:the )?(?:role of (?:the )?)?user\b",
    r"\b(?:i am|i'm) (?:the|a) user\b",
))

_ASKED_VERB = r"(?:asked|requested|wanted)"
_REQUEST = r"(?:request|instruction|question|task|prompt|query)s?"
#: an assistant turn revealing that it answered a different request than the user's (docs/methods.md, MUSIC step 4)
SWAP_REVEAL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"\b" + _REQUEST + r" (?:was|were|has been|have been|had been|got) (?:changed|modified|altered|swapped|"
    r"replaced|switched|rewritten)",
    r"\b(?:changed|modified|altered|swapped|replaced|switched|rewrote|rewritten) (?:the|your) (?:original )?"
    + _REQUEST,
    r"\b(?:modified|altered|swapped|different|rewritten) version of (?:the|your) " + _REQUEST,
    r"\binstead of (?:what )?you(?:'ve| have)? (?:originally |actually )?" + _ASKED_VERB,
    r"\binstead of (?:answering|addressing|responding to) (?:the|your) (?:original )?" + _REQUEST,
    r"\brather than (?:what )?you(?:'ve| have)? (?:originally |actually )?" + _ASKED_VERB,
    r"\byou (?:originally |actually |initially )?" + _ASKED_VERB + r" (?:for|about|me to)\b[^.!?\n]{0,80}?,? but\b",
    r"\bnot what you (?:originally |actually |initially )?" + _ASKED_VERB,
    r"\b(?:i was|i've been|i have been|i am|i'm) (?:told|instructed|asked) to (?:answer|respond to|address|"
    r"write about) (?:a different|another|a new)",
    r"\bmy instructions? (?:say|says|tell|tells|told|asks?|asked) me\b",
))


def _tokens(text: str) -> list[str]:
    """Lowercased word tokens (letters, digits, underscore; any script)."""
    return _WORD.findall(text.lower())


def _longest_loop(tokens: list[str]) -> int:
    """Most back-to-back repeats of any span of 1..MAX_LOOP_PERIOD tokens (a run of `k` positions where
    `tokens[i] == tokens[i + period]` is a stretch of `k + period` tokens, `(k + period) // period` copies)."""
    best = 1
    for period in range(1, MAX_LOOP_PERIOD + 1):
        run = 0
        for i in range(len(tokens) - period):
            run = run + 1 if tokens[i] == tokens[i + period] else 0
            best = max(best, (run + period) // period)
    return best


def degenerate_reason(text: str) -> str | None:
    """DEGENERATE for empty text, loops and low-diversity repetition, or text that is not language (mostly
    punctuation, replacement or control characters); None for ordinary text."""
    if not text.strip():
        return DEGENERATE
    if text.count("\ufffd") >= MAX_REPLACEMENT_CHARS or _CONTROL.search(text):
        return DEGENERATE
    visible = [ch for ch in text if not ch.isspace()]
    if len(visible) >= MIN_CHARS_FOR_CHARSET and sum(ch.isalnum() for ch in visible) < MIN_WORD_CHAR_SHARE * len(visible):
        return DEGENERATE
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    if (len(lines) >= MIN_LINES_FOR_REPETITION
            and Counter(lines).most_common(1)[0][1] > MAX_TOP_LINE_SHARE * len(lines)):
        return DEGENERATE
    tokens = _tokens(text)
    if len(tokens) < MIN_TOKENS_FOR_REPETITION:
        return DEGENERATE if len(tokens) >= MIN_TOKENS_FOR_ONE_TOKEN_LOOP and len(set(tokens)) == 1 else None
    if Counter(tokens).most_common(1)[0][1] > MAX_TOP_TOKEN_SHARE * len(tokens):
        return DEGENERATE
    ngrams = [tuple(tokens[i:i + DISTINCT_N]) for i in range(len(tokens) - DISTINCT_N + 1)]
    if ngrams and len(set(ngrams)) < MIN_DISTINCT_N_RATIO * len(ngrams):
        return DEGENERATE
    if _longest_loop(tokens) >= MIN_LOOP_REPEATS:
        return DEGENERATE
    return None


def scaffolding_reason(text: str) -> str | None:
    """SCAFFOLDING when a (simulated user) turn quotes prompt scaffolding or talks about its role:
    "Conversation so far", "Here's the next message", a line opening with "User:"/"Assistant:"/"Human:",
    chat-template tokens, "As the user"; None otherwise."""
    if any(pattern.search(text) for pattern in SCAFFOLDING_PATTERNS):
        return SCAFFOLDING
    return None


def swap_reveal_reason(text: str) -> str | None:
    """REVEALS_SWAP when an assistant turn says it answered a changed request ("the request was changed",
    "instead of what you asked", "you asked for X, but"); None for ordinary answers, including ones that say
    "instead of" or "swapped" about their subject matter."""
    if any(pattern.search(text) for pattern in SWAP_REVEAL_PATTERNS):
        return REVEALS_SWAP
    return None


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length (ROUGE-L's core), O(len(a) * len(b))."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def repeat_reason(text: str, previous: str) -> str | None:
    """REPEATED_TURN when `text` is a near-copy of `previous`: token-set Jaccard >= REPEAT_JACCARD, ROUGE-L F1
    >= REPEAT_ROUGE_L, or a long turn that is almost all a subsequence of the previous one; None otherwise."""
    tokens, before = _tokens(text)[:REPEAT_MAX_TOKENS], _tokens(previous)[:REPEAT_MAX_TOKENS]
    if not tokens or not before:
        return None
    union = set(tokens) | set(before)
    if len(set(tokens) & set(before)) >= REPEAT_JACCARD * len(union):
        return REPEATED_TURN
    common = _lcs_length(tokens, before)
    precision, recall = common / len(tokens), common / len(before)
    if common and 2 * precision * recall / (precision + recall) >= REPEAT_ROUGE_L:
        return REPEATED_TURN
    if len(tokens) >= REPEAT_MIN_COPY_TOKENS and precision >= REPEAT_CONTAINMENT:
        return REPEATED_TURN
    return None
