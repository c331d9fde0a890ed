"""MIMG multi-hop long-context QA (docs/methods.md, MIMG): config, steps, algorithm and run, registered once."""

from generate.mimg.algorithm import expected_calls
from generate.mimg.config import MimgConfig
from generate.mimg.run import MimgRunResult, format_mimg_run, run_mimg
from generate.registry import DOCUMENTS, Generator, register_generator

register_generator(Generator(
    name="mimg",
    description="MIMG: document groups (kNN walk), single-hop QAs per chunk, verification, embedding neighbours, "
                "multi-hop merger (docs/methods.md, MIMG)",
    help="multi-hop long-context QA generation from documents (MIMG / LongMIT)",
    about="MIMG (arXiv 2409.01893, docs/methods.md). Training records {prompt, answer, hops, source_qa_ids, "
          "doc_ids, rationale, meta} go to OUT (meta: the document group and the context's passages in order), "
          "the single-hop QAs to OUT.qas.jsonl, the merge chains to OUT.chains.jsonl, pass rates and the hop "
          "distribution to OUT.summary.json; multi_hop_merge: false is the no-merger ablation (single-hop "
          "records). Rerunning the same command resumes.",
    config=MimgConfig,
    input=DOCUMENTS,
    input_help="documents: {id, content} JSONL (e.g. the LongMIT corpus), .txt files, HotpotQA rows "
               "(their context paragraphs)",
    run=run_mimg,
    result=MimgRunResult,
    unit="chunks",
    produces="MIMG multi-hop QAs",
    expected_calls=expected_calls,
    report=format_mimg_run,
    exit_code=lambda result: result.exit_code,
))
