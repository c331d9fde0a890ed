"""SeDi-Instruct and its Self-Instruct baseline (docs/methods.md, SeDi-Instruct): config, steps, algorithm and run,
registered once."""

from chat.runner import FilteredRunResult
from generate.registry import SEEDS, Export, Generator, register_generator
from generate.sedi.algorithm import expected_calls
from generate.sedi.config import SediConfig
from generate.sedi.run import format_sedi_run, run_sedi

register_generator(Generator(
    name="sedi",
    description="SeDi-Instruct (relaxed ROUGE-L, diverse batches, feedback on seeds) and its Self-Instruct "
                "baseline mode (docs/methods.md, SeDi-Instruct)",
    help="instruction generation: SeDi-Instruct or the Self-Instruct baseline (--mode self-instruct)",
    about="SeDi-Instruct (arXiv 2502.04774, docs/methods.md) and its Self-Instruct baseline. Kept pairs "
          "go to OUT (canonical conversations with provenance in meta); OUT.iterations.jsonl logs each "
          "iteration, so rerunning the same command resumes; sedi mode writes OUT batch by batch.",
    config=SediConfig,
    input=SEEDS,
    input_help="seed tasks: Self-Instruct seed tasks, Alpaca, any conversation file",
    run=run_sedi,
    result=FilteredRunResult,
    unit="iterations",
    produces="SeDi instructions",
    expected_calls=expected_calls,
    report=format_sedi_run,
    export=Export("--alpaca", "alpaca", "Alpaca", "pairs", "also export the kept pairs as Alpaca rows"),
))
