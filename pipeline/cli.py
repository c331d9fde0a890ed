"""`turnwise run CONFIG`: the pipeline end to end, resumable stage by stage (DESIGN.md "Main job")."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import STAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run a pipeline config end to end (augment -> mix -> rm_train: baseline and MUSIC RM -> "
                    "rm_eval -> bon -> judge -> generate -> report), resumable stage by stage",
        description="Run configs/pipeline/NAME.yaml. Each stage writes RUN/<stage>/ and marks itself done with "
                    "RUN/<stage>/stage.json; rerunning the same command skips done stages and resumes the one "
                    "that was cut off, item by item. The report is RUN/report/report.md.")
    parser.add_argument("config", type=Path, metavar="CONFIG", help="pipeline YAML (configs/pipeline/*.yaml)")
    parser.add_argument("--run-dir", type=Path, metavar="DIR", help="run directory (default: the config's run_dir)")
    parser.add_argument("--until", choices=STAGES, metavar="STAGE",
                        help=f"stop after this stage ({', '.join(STAGES)})")
    parser.add_argument("--from", dest="start", choices=STAGES, metavar="STAGE",
                        help="redo this stage and every later one from scratch (their directories are removed; "
                             "earlier stages must be done)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan with estimated LLM calls and tokens per stage; run nothing")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: neither the bars drawn on a terminal nor the plain lines written every "
                             "30 s when stderr is a file or pipe")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from pipeline.config import PipelineConfig
    from pipeline.estimate import format_plan
    from pipeline.run import StageSelection, run_pipeline, stage_status
    from pipeline.stages import StageContext

    config = PipelineConfig.load(args.config, args.run_dir)
    if args.dry_run:
        selection = StageSelection.parse(args.start, args.until)
        statuses = {stage: "redo" if args.start and STAGES.index(stage) >= STAGES.index(args.start)
                    else stage_status(config, stage) for stage in selection.stages}
        print(format_plan(StageContext(config, progress=False), selection.stages, statuses))
        return 0
    code = run_pipeline(config, start=args.start, until=args.until, progress=not args.no_progress)
    if code == 0 and (args.until in (None, "report")):
        print(f"report -> {config.run_dir / 'report' / 'report.md'}")
    return code
