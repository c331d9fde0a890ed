"""The one table of bench/RESULTS.md: rows from `record(...)` results, rendered as Markdown, parsed back and merged.

A row's cells are kept as the text shown in the table, so rows that a run did not touch go back into the file
exactly as they were read. `record(...)`'s optional `details["summary"]` (a short text such as
"139.8 vs 27.6 tok/s") is shown after the ratio.
"""

from __future__ import annotations

import math
import re
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from chat.errors import InputError

#: The table's columns, in order; `job` names the bench/run_all plan entry that produces the row.
COLUMNS = ("job", "benchmark", "baseline", "ratio", "target", "met", "machine", "measured", "command")
#: How a status row (a job that failed or was skipped) starts its ratio cell.
STATUS_MARKS = ("**failed**", "**skipped**", "**interrupted**")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass
class TableRow:
    """One row of the results table, as the text of its cells."""

    job: str
    benchmark: str
    baseline: str
    ratio: str
    target: str
    met: str
    machine: str
    measured: str
    command: str

    @property
    def is_status(self) -> bool:
        """True for a row that says a job failed, was skipped or interrupted (no measurement)."""
        return self.ratio.startswith(STATUS_MARKS)


def format_met(met: bool | None) -> str:
    """yes / no / n.a. (no target, or nothing measured)."""
    return "n.a." if met is None else ("yes" if met else "no")


def format_ratio(ratio: float | None, unit: str, summary: str = "") -> str:
    """`ratio` in its unit ("x": 5.06x, "points": +2.03 points, other units: the measured value and unit),
    followed by the summary in parentheses."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        value = "n.a."
    elif unit == "x":
        value = f"{ratio:.2f}x" if ratio == 0 or abs(ratio) >= 1 else f"{ratio:.3g}x"
    elif unit == "points":
        value = f"{ratio:+.2f} points"
    else:
        value = f"{ratio:.4g} {unit}"
    return f"{value} ({summary})" if summary else value


def row_from_record(job: str, record: Mapping[str, Any], *, measured: str, command: str) -> TableRow:
    """The table row of one JSON object written by `bench.results.record`."""
    details = record.get("details") or {}
    summary = str(details.get("summary", "")) if isinstance(details, Mapping) else ""
    return TableRow(job=job, benchmark=str(record["benchmark"]), baseline=str(record.get("baseline", "")),
                    ratio=format_ratio(record.get("ratio"), str(record.get("unit", "x")), summary),
                    target=str(record.get("target", "")), met=format_met(record.get("met")),
                    machine=str(record.get("machine", "")), measured=measured, command=command)


def status_row(job: str, title: str, status: str, reason: str, *, machine: str, measured: str,
               command: str) -> TableRow:
    """A row saying that `job` did not produce its numbers: status is failed, skipped or interrupted."""
    return TableRow(job=job, benchmark=title, baseline="", ratio=f"**{status}**: {reason}", target="", met="n.a.",
                    machine=machine, measured=measured, command=command)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_table(rows: Iterable[TableRow]) -> str:
    """The Markdown table: header, separator, one line per row (pipes in cells escaped, commands as code)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [_cell(value) for value in astuple(row)]
        if cells[-1]:
            cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _split_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_PIPE.split(inner)]


def parse_table(text: str, path: str | Path = "RESULTS.md") -> list[TableRow]:
    """The rows of the results table in `text` (the first table whose header is COLUMNS); [] when there is none.
    A row with the wrong number of cells is an InputError naming the file and line."""
    lines = text.splitlines()
    header = [index for index, line in enumerate(lines)
              if line.lstrip().startswith("|") and tuple(_split_cells(line)) == COLUMNS]
    if not header:
        return []
    rows = []
    for number in range(header[0] + 2, len(lines)):
        line = lines[number]
        if not line.lstrip().startswith("|"):
            break
        cells = _split_cells(line)
        if len(cells) != len(COLUMNS):
            raise InputError(path, number + 1, "table row", f"{len(cells)} cells, expected {len(COLUMNS)} "
                             f"({', '.join(COLUMNS)}); escape a | inside a cell as \\|")
        command = cells[-1]
        if len(command) >= 2 and command.startswith("`") and command.endswith("`"):
            cells[-1] = command[1:-1]
        rows.append(TableRow(*cells))
    return rows


def read_table(path: Path) -> list[TableRow]:
    """The rows of the results table in the file at `path`; [] when the file does not exist."""
    return parse_table(path.read_text(encoding="utf-8"), path) if path.exists() else []


def merge_rows(existing: Sequence[TableRow], fresh: Mapping[str, Sequence[TableRow]],
               job_order: Sequence[str]) -> list[TableRow]:
    """The table after a run: for every job in `job_order`, its `fresh` rows when it ran, else its existing rows;
    then existing rows of jobs outside the plan, in their old order.

    A job that ran and measured something replaces all its old rows. A job that ran but only produced status
    rows (failed, skipped, interrupted) keeps its old measurements, drops its old status rows and adds the new
    status row, so an old number is never lost to a failed rerun and its date says how old it is.
    """
    by_job: dict[str, list[TableRow]] = {}
    for row in existing:
        by_job.setdefault(row.job, []).append(row)
    merged: list[TableRow] = []
    for job in job_order:
        old = by_job.pop(job, [])
        if job not in fresh:
            merged += old
        elif all(row.is_status for row in fresh[job]):
            merged += [row for row in old if not row.is_status] + list(fresh[job])
        else:
            merged += list(fresh[job])
    for rows in by_job.values():
        merged += rows
    return merged
