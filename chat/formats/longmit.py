"""LongMIT multi-hop bundles `{aggregated_docs, intra_doc_qas, multihop_qas, selected_qa_ids, clustered_mqa_info}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, optional, require, require_text

#: The two ways LongMIT chains single-hop QAs: within one document, or across documents.
HOP_KINDS = ("indoc", "crossdoc")


@dataclass(frozen=True)
class SingleHopQA:
    """One intra-document QA of a bundle, with the document it was asked about."""

    doc_id: str
    rationale: str


def single_hop_qas(row: dict[str, Any], doc_ids: list[str]) -> list[SingleHopQA]:
    """`intra_doc_qas` flattened in LongMIT's order (document, then chunk, then QA): the index
    space that `selected_qa_ids` and `clustered_mqa_info` refer to."""
    per_doc = require(row, "intra_doc_qas", list)
    if len(per_doc) != len(doc_ids):
        raise ValidationError("intra_doc_qas", f"{len(per_doc)} entries for {len(doc_ids)} aggregated_docs")
    flat = []
    for d, chunks in enumerate(per_doc):
        if not isinstance(chunks, list):
            raise ValidationError(f"intra_doc_qas[{d}]", f"expected a list of chunks, got {json_type(chunks)}")
        for c, qas in enumerate(chunks):
            if not isinstance(qas, list):
                raise ValidationError(f"intra_doc_qas[{d}][{c}]", f"expected a list of QAs, got {json_type(qas)}")
            for q, qa in enumerate(qas):
                where = f"intra_doc_qas[{d}][{c}][{q}]"
                if not isinstance(qa, dict):
                    raise ValidationError(where, f"expected an object, got {json_type(qa)}")
                flat.append(SingleHopQA(doc_ids[d], optional(qa, "rationale", str, "", where)))
    return flat


def hop_sources(row: dict[str, Any], n_multihop: int, n_single: int) -> list[dict[str, list[int]] | None]:
    """For each multihop_qas entry, the single-hop QA ids its chains were merged from.

    LongMIT's merger walks the flattened QAs in index order and processes those in
    `selected_qa_ids`; entry k therefore belongs to seed QA `sorted(selected_qa_ids)[k]`, and
    `clustered_mqa_info[seed]` lists the QAs merged in, per hop kind. None where the bundle
    does not carry consistent bookkeeping.
    """
    selected = row.get("selected_qa_ids")
    clusters = row.get("clustered_mqa_info")
    if not (isinstance(selected, list) and isinstance(clusters, list) and len(selected) == n_multihop
            and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < min(n_single, len(clusters))
                    for i in selected)):
        return [None] * n_multihop
    sources: list[dict[str, list[int]] | None] = []
    for seed in sorted(selected):
        cluster = clusters[seed]
        ids = {kind: cluster.get(f"{kind}_ids") for kind in HOP_KINDS} if isinstance(cluster, dict) else {}
        if all(isinstance(v, list) and all(isinstance(i, int) and 0 <= i < n_single for i in v) for v in ids.values()) and ids:
            sources.append({"seed": [seed], **ids})
        else:
            sources.append(None)
    return sources


class LongMITReader(RecordReader):
    """Multi-hop QAs of LongMIT bundles (Chen et al. 2024, MIMG) as question/answer conversations.

    Each chain step j of a multihop entry merges j + 2 single-hop QAs (the seed plus j + 1
    partners) and becomes one conversation with meta: `hop_kind`, `hops`, `doc_ids` (documents
    of the merged QAs, seed first), `rationale` (their single-hop rationales) and
    `context_doc_ids` (every document of the bundle, to rebuild the long context). When some
    merges failed upstream the chain is shorter than its partner list and the partners of a
    step are ambiguous; then `hop_qa_ids_exact` is false and `doc_ids` lists seed plus all
    candidates.
    """

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return isinstance(row.get("aggregated_docs"), list) and "multihop_qas" in row

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        docs = require(row, "aggregated_docs", list)
        doc_ids = []
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict):
                raise ValidationError(f"aggregated_docs[{i}]", f"expected an object, got {json_type(doc)}")
            doc_ids.append(str(require(doc, "id", (str, int), f"aggregated_docs[{i}]")))
        singles = single_hop_qas(row, doc_ids)
        multihop = require(row, "multihop_qas", list)
        sources = hop_sources(row, len(multihop), len(singles))
        conversations = []
        for k, (entry, source) in enumerate(zip(multihop, sources)):
            if not isinstance(entry, dict):
                raise ValidationError(f"multihop_qas[{k}]", f"expected an object, got {json_type(entry)}")
            for kind in HOP_KINDS:
                chain = optional(entry, kind, list, [], f"multihop_qas[{k}]")
                for j, qa in enumerate(chain):
                    where = f"multihop_qas[{k}].{kind}[{j}]"
                    if not isinstance(qa, dict):
                        raise ValidationError(where, f"expected an object, got {json_type(qa)}")
                    messages = [{"role": "user", "content": require_text(qa, "question", where)},
                                {"role": "assistant", "content": require_text(qa, "answer", where)}]
                    meta = self._meta(kind, j, len(chain), source, singles, doc_ids, row)
                    conversations.append(Conversation.from_messages(messages, meta=meta))
        yield from conversations

    @staticmethod
    def _meta(kind: str, step: int, chain_length: int, source: dict[str, list[int]] | None,
              singles: list[SingleHopQA], doc_ids: list[str], row: dict[str, Any]) -> dict[str, Any]:
        meta: dict[str, Any] = {"source": "longmit", "hop_kind": kind, "hops": step + 2,
                                "context_doc_ids": doc_ids, "token_count": row.get("token_count")}
        if source is None:
            meta.update(hop_qa_ids=None, hop_qa_ids_exact=False, doc_ids=[], rationale=[])
            return meta
        partners = source[kind]
        exact = len(partners) == chain_length
        qa_ids = source["seed"] + (partners[:step + 1] if exact else partners)
        meta.update(
            hop_qa_ids=qa_ids,
            hop_qa_ids_exact=exact,
            doc_ids=list(dict.fromkeys(singles[i].doc_id for i in qa_ids)),
            rationale=[singles[i].rationale for i in qa_ids] if exact else [],
        )
        return meta


FORMATS.add("longmit-qa", LongMITReader(),
            "LongMIT multi-hop bundles {aggregated_docs, intra_doc_qas, multihop_qas, ...} -> one conversation per multi-hop QA")
