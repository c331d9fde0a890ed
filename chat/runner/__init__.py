"""The resumable runner every long job goes through: items with stable ids -> async workers -> JSONL sink."""

from chat.runner.fingerprint import (add_overwrite_argument, backend_identities, check_settings, claim_output,
                                      config_settings, fingerprint_path)
from chat.runner.outcomes import FilteredRunResult, run_filtered, seed_log_path
from chat.runner.jobs import TooManyErrors, default_item_id, run, run_jobs
from chat.runner.progress import RunProgress
from chat.runner.sink import (ErrorLog, JsonlSink, encode_record, errors_path, iter_records, read_records,
                              summary_path, write_json_atomic)
from chat.runner.summary import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, RunSummary, format_summary

__all__ = [
    "EXIT_INTERRUPTED", "EXIT_ITEMS_FAILED", "ErrorLog", "FilteredRunResult", "JsonlSink", "RunProgress", "RunSummary",
    "TooManyErrors", "add_overwrite_argument", "backend_identities", "check_settings", "claim_output", "config_settings", "default_item_id", "encode_record",
    "errors_path", "fingerprint_path", "format_summary", "iter_records",
    "read_records", "run", "run_filtered", "run_jobs", "seed_log_path", "summary_path", "write_json_atomic",
]
