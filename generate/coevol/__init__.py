"""CoEvol (docs/methods.md, CoEvol): config, steps, algorithm and run, registered once."""

from chat.runner import FilteredRunResult
from generate.coevol.algorithm import expected_calls
from generate.coevol.config import CoevolConfig
from generate.coevol.run import format_coevol_run, run_coevol
from generate.registry import CONVERSATIONS, Generator, register_generator

register_generator(Generator(
    name="coevol",
    description="CoEvol: debate / advisor / editor / judge response refinement, LLM or RM judge "
                "(docs/methods.md, CoEvol)",
    help="refine the responses of instruction data by debate, advice, edit and judgement (CoEvol)",
    about="CoEvol (arXiv 2406.07054, docs/methods.md). One refined conversation per input goes to OUT "
          "(iterations, suggestions, both judge orders and the merged decision, truncated edits, RM scores "
          "before/after per turn and per accepted edit, and usage in meta.coevol); OUT.summary.json adds the "
          "acceptance rate per iteration, the RM score delta distribution and the mean change per accepted edit. "
          "Rerunning the same command resumes.",
    config=CoevolConfig,
    input=CONVERSATIONS,
    input_help="instruction data: Alpaca, ShareGPT, canonical conversations (pairs: the chosen side)",
    run=run_coevol,
    result=FilteredRunResult,
    unit="conversations",
    produces="CoEvol refined responses",
    expected_calls=expected_calls,
    report=format_coevol_run,
))
