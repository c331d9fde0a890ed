"""Config of `turnwise generate mimg` (MIMG multi-hop long-context QA, docs/methods.md), TRL-style with help."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.config import check_backend_roles, check_run_fields
from chat.errors import ConfigError
from generate.run_settings import default_backends

#: The two ways a seed QA is chained (docs/methods.md, MIMG step 4): neighbours in the same document, or in
#: other documents.
CHAIN_KINDS = ("indoc", "crossdoc")
MIMG_ROLES = ("default", "questioner", "answerer", "verifier", "merger")


@dataclass
class MimgConfig:
    r"""Configuration of `turnwise generate mimg` (MIMG, docs/methods.md).

    Parameters that control the document organisation and the training context:
        organise_documents, group_size, group_neighbours, context_tokens, distractor_chunks (only without
        organise_documents).
    Parameters that control the single-hop stage:
        chunk_tokens (approximate tokens: characters / 4), max_questions, verify_threshold.
    Parameters that control the multi-hop stage:
        multi_hop_merge (off: the no-merger ablation), chains, max_hops, max_seeds, verify_merged, embedder,
        embed_device.
    Parameters that control the agents:
        backends (roles questioner, answerer, verifier, merger; `default`), temperature, max_tokens, max_reasks,
        seed.
    Parameters that control the run:
        concurrency, limit (documents), input_format, input_on_error.

    Calls: per chunk 1 question call + per question 1 answer + 1 verification; per seed QA and chain kind
    up to (max_hops - 1) x (1 merge + 1 verification), none without multi_hop_merge; plus re-asks. A chain stops
    at the first merge that does not parse or does not pass verification. Organising documents embeds them once
    (no LLM call).
    """

    organise_documents: bool = field(
        default=True, metadata={"help": "Organise documents into groups of related ones (kNN over document "
                                        "embeddings, as the public code): cross-document neighbours come from the "
                                        "seed's group and the training context is built from the group. Off: "
                                        "neighbours from the whole corpus, context = source chunks + distractors."})
    group_size: int = field(default=21, metadata={"help": "Documents per group at most (public code: 21)."})
    group_neighbours: int = field(
        default=9, metadata={"help": "Nearest documents a group's walk looks at for its next member (public code: "
                                     "9); none of them unvisited ends the group."})
    context_tokens: int | None = field(
        default=None, metadata={"help": "Training context budget in approximate tokens: the source documents, then "
                                        "other group members in group order while they fit (none = the whole "
                                        "group, as the public code). Only with organise_documents."})

    chunk_tokens: int = field(default=2000, metadata={"help": "Chunk size in approximate tokens (paper: ~2k)."})
    max_questions: int = field(default=3, metadata={"help": "Single-hop questions per chunk at most (paper: 3)."})
    verify_threshold: int = field(
        default=7, metadata={"help": "Keep QAs whose verification score (1-10) is at least this."})

    multi_hop_merge: bool = field(
        default=True, metadata={"help": "Merge QAs into multi-hop QAs. Off: the no-merger ablation, each seed QA "
                                        "becomes a single-hop training record (no merge or verification calls)."})
    chains: list = field(default_factory=lambda: list(CHAIN_KINDS),
                         metadata={"help": "Chain kinds to merge: indoc (neighbours in the same document), crossdoc "
                                           "(neighbours in other documents)."})
    max_hops: int = field(default=4, metadata={"help": "Longest merged QA in hops (2-4; paper: 2-, 3- and 4-hop)."})
    max_seeds: int | None = field(
        default=None, metadata={"help": "Seed QAs to merge from, sampled with `seed` (none = every kept QA)."})
    verify_merged: bool = field(default=True, metadata={"help": "Verify merged QAs too (same agent and threshold)."})
    distractor_chunks: int = field(
        default=0, metadata={"help": "Extra chunks of unrelated documents added to each training prompt (long "
                                     "context); passages are shuffled with a seed per record. Only without "
                                     "organise_documents (with it, the group supplies the context)."})
    embedder: str = field(default="minilm", metadata={"help": "Sentence embedder of question + answer: minilm "
                                                              "(all-MiniLM-L6-v2 from pip, offline) or a local path."})
    embed_device: str = field(default="cpu", metadata={"help": "Device of the embedder."})

    backends: dict = field(
        default_factory=default_backends,
        metadata={"help": "Role -> backend spec: questioner, answerer, verifier, merger; `default` serves every "
                          "role without its own entry."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature of every agent call."})
    max_tokens: int = field(default=768, metadata={"help": "Maximum tokens per reply."})
    max_reasks: int = field(default=2, metadata={"help": "Re-asks of a step whose reply lacks its required part."})
    seed: int = field(default=0, metadata={"help": "Seed of seed sampling, distractors and every call."})

    concurrency: int = field(default=8, metadata={"help": "Chunks (stage 1) or chains (stage 2) worked at once."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N documents."})
    input_format: str | None = field(default=None, metadata={"help": "Input format (default: detected)."})
    input_on_error: str = field(
        default="skip", metadata={"help": "Invalid input rows: skip (counted) or fail.", "choices": ["skip", "fail"]})

    def __post_init__(self) -> None:
        check_run_fields(self)
        if self.chunk_tokens < 8:
            raise ConfigError(f"chunk_tokens: expected at least 8, got {self.chunk_tokens}")
        if self.max_questions < 1:
            raise ConfigError(f"max_questions: expected at least 1, got {self.max_questions}")
        if not 1 <= self.verify_threshold <= 10:
            raise ConfigError(f"verify_threshold: expected 1-10, got {self.verify_threshold}")
        if not 2 <= self.max_hops <= 4:
            raise ConfigError(f"max_hops: expected 2, 3 or 4, got {self.max_hops}")
        if not isinstance(self.chains, list) or not self.chains or any(c not in CHAIN_KINDS for c in self.chains):
            raise ConfigError(f"chains: expected a non-empty list of {', '.join(CHAIN_KINDS)}, got {self.chains!r}")
        if self.max_seeds is not None and self.max_seeds < 0:
            raise ConfigError(f"max_seeds: expected 0 or more, got {self.max_seeds}")
        if self.distractor_chunks < 0 or self.max_reasks < 0:
            raise ConfigError("distractor_chunks, max_reasks: expected 0 or more")
        if self.group_size < 1 or self.group_neighbours < 1:
            raise ConfigError(f"group_size, group_neighbours: expected at least 1, got {self.group_size}, "
                              f"{self.group_neighbours}")
        if self.context_tokens is not None and self.context_tokens < 1:
            raise ConfigError(f"context_tokens: expected at least 1 or null, got {self.context_tokens}")
        if self.organise_documents and self.distractor_chunks:
            raise ConfigError("distractor_chunks: only with organise_documents: false (organised documents build "
                              "the context from the group)")
        if not self.organise_documents and self.context_tokens is not None:
            raise ConfigError("context_tokens: only with organise_documents: true")
        check_backend_roles(self.backends, MIMG_ROLES)
        for role in MIMG_ROLES[1:]:
            if role not in self.backends and "default" not in self.backends:
                raise ConfigError(f"backends: no '{role}' entry and no 'default' entry")
