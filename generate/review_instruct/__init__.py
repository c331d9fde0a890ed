"""Review-Instruct (docs/methods.md, Review-Instruct): config, steps, algorithm and run, registered once."""

from chat.runner import FilteredRunResult
from generate.kept_summary import format_filtered_run
from generate.registry import SEEDS, Export, Generator, register_generator
from generate.review_instruct.algorithm import expected_calls
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.run import run_review_instruct

register_generator(Generator(
    name="review-instruct",
    description="Review-Instruct: Candidate / Reviewers / Chairman multi-turn synthesis with the RM as reviewer and "
                "filter (docs/methods.md, Review-Instruct)",
    help="multi-turn conversations by Candidate / Reviewers / Chairman (Review-Instruct)",
    about="Review-Instruct (arXiv 2505.11010, docs/methods.md). Kept conversations go to OUT (canonical "
          "conversations; reviews, votes, the chairman's decisions, the reviewer panel, RM scores, usage in "
          "meta); every seed's outcome goes to OUT.seeds.jsonl, so rerunning the same command resumes.",
    config=ReviewInstructConfig,
    input=SEEDS,
    input_help="seed questions: Alpaca, Self-Instruct seed tasks, MT-Bench questions, ShareGPT, plain text "
               "(one question per line)",
    run=run_review_instruct,
    result=FilteredRunResult,
    unit="seeds",
    produces="Review-Instruct conversations",
    expected_calls=expected_calls,
    report=lambda result, output: format_filtered_run(result, "conversations"),
    export=Export("--sharegpt", "sharegpt", "ShareGPT", "conversations",
                  "also export the kept conversations as ShareGPT"),
))
