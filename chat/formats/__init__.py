"""Dataset formats: readers into the data model (auto-detected from the first row), loaders, and the canonical JSONL writer."""

from chat.registry import registry

#: Format name -> RecordReader, in detection order (the readers below register themselves on import).
FORMATS = registry("formats", "format")

# Registration order is detection order (the first reader whose `matches` accepts the row wins);
# readers' `matches` exclude each other's rows, the more specific formats come first.
from chat.formats import trl  # noqa: E402,F401
from chat.formats import hh_rlhf  # noqa: E402,F401
from chat.formats import rmb  # noqa: E402,F401
from chat.formats import alpaca_eval  # noqa: E402,F401
from chat.formats import mt_bench  # noqa: E402,F401
from chat.formats import mt_bench_answers  # noqa: E402,F401
from chat.formats import mt_bench_101  # noqa: E402,F401
from chat.formats import longmit  # noqa: E402,F401
from chat.formats import judge_prompts  # noqa: E402,F401
from chat.formats import hotpotqa  # noqa: E402,F401
from chat.formats import alpaca  # noqa: E402,F401
from chat.formats import self_instruct  # noqa: E402,F401
from chat.formats import sharegpt  # noqa: E402,F401
from chat.formats import documents  # noqa: E402,F401
from chat.formats.base import CONVERSATION, DOCUMENT, JUDGE_PROMPT, PAIR, RecordReader, SourceInfo  # noqa: E402
from chat.formats.judge_prompts import JudgePromptTemplate  # noqa: E402
from chat.formats.reading import (  # noqa: E402
    ON_ERROR, DatasetReader, RowResult, detect_format, detect_row_format, load_conversations, load_documents,
    load_judge_prompts, load_pairs, read_records, read_records_of,
)
from chat.formats.writer import canonical_row, write_jsonl  # noqa: E402

__all__ = [
    "CONVERSATION", "DOCUMENT", "FORMATS", "JUDGE_PROMPT", "ON_ERROR", "PAIR", "DatasetReader", "JudgePromptTemplate",
    "RecordReader", "RowResult", "SourceInfo", "canonical_row", "detect_format", "detect_row_format",
    "load_conversations", "load_documents", "load_judge_prompts", "load_pairs", "read_records", "read_records_of",
    "write_jsonl",
]
