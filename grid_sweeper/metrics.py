"""What a job's return value means: the metric that ranks jobs, and the table columns it gives.

One home for these rules, so that the Hydra sweeper, `gridsweep`, results.csv, summary.yaml and
report.html agree. A task may return a number (that number is the metric) or a dict of metrics
(`{"loss": 0.3, "acc": 0.9}`, as lightning-hydra-template does; `metric=loss` or a dotted path
`metric=val.loss` picks the one that ranks jobs).

Column names carry a prefix (`flag.`, `return.`), so that a swept flag or a returned key named
`error` or `status` can never clash with the table's own columns, which have no dot.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from grid_sweeper.flag_text import name_and_value

#: the table's own columns (no dot in any of them)
JOB, STATUS, METRIC, DURATION, ERROR, LOG = "job", "status", "metric", "duration", "error", "log"
FLAG_PREFIX = "flag."
RETURN_PREFIX = "return."
#: the column of a return value that is not a dict (a number, a list)
RETURN_COLUMN = "return"


def is_number(value: Any) -> bool:
    """A finite int or float (bools are not metrics)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def lookup(value: Any, path: str) -> Any:
    """`value[a][b]` for the dotted path `a.b`; a key that itself holds a dot is found too."""
    if not isinstance(value, dict):
        return None
    if path in value:
        return value[path]
    head, dot, rest = path.partition(".")
    while dot:
        if head in value:
            found = lookup(value[head], rest)
            if found is not None:
                return found
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    return None


def metric_of(return_value: Any, metric: Optional[str]) -> Optional[float]:
    """The number that ranks a job, or None when the job has none.

    Without a metric name a number return value is the metric; with one, that key of a dict return
    value (dotted for nested dicts).
    """
    value = return_value if not metric else lookup(return_value, metric)
    return value if is_number(value) else None


def scalar_items(return_value: Any, prefix: str = "") -> List[Tuple[str, Any]]:
    """(dotted key, value) of every scalar leaf of a dict return value, in the dict's order."""
    items: List[Tuple[str, Any]] = []
    for key, value in return_value.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(scalar_items(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            items.append((name, value))
    return items


def return_columns(return_value: Any) -> Dict[str, Any]:
    """The results-table cells of a return value: `return.<key>` per scalar key, else `return`."""
    if return_value is None:
        return {}
    if isinstance(return_value, dict):
        return {RETURN_PREFIX + key: value for key, value in scalar_items(return_value)}
    if isinstance(return_value, list):
        return {RETURN_COLUMN: json.dumps(return_value)}
    return {RETURN_COLUMN: return_value}


def flag_values(overrides: Iterable[str]) -> Dict[str, str]:
    """Flag name -> the value text of a job's overrides."""
    return dict(name_and_value(line) for line in overrides)


def log_of(record: Dict[str, Any]) -> str:
    """The file that holds a job's traceback and output: stderr.log, else the job's log file."""
    logs = record.get("logs") or {}
    return logs.get("stderr") or logs.get("log") or record.get("output_dir") or ""


def table(
    records: Sequence[Dict[str, Any]], swept: Sequence[str], metric: Optional[str]
) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The results table of records (results.jsonl objects): column names and one row per job.

    Columns: job, `flag.<name>` per swept flag (every override's key when none is given), status,
    metric, `return.<key>` per scalar key seen in any return value, duration, error, log.
    """
    keys = list(swept) or list(dict.fromkeys(name_and_value(o)[0] for r in records for o in r["overrides"]))
    returned: Dict[str, None] = {}
    rows = []
    for record in records:
        values = flag_values(record["overrides"])
        cells = return_columns(record.get("return_value"))
        returned.update(dict.fromkeys(cells))
        rows.append({
            JOB: record["job"],
            **{FLAG_PREFIX + key: values.get(key, "") for key in keys},
            STATUS: record["status"],
            METRIC: metric_of(record.get("return_value"), metric),
            **cells,
            DURATION: record.get("duration"),
            ERROR: record.get("error", ""),
            LOG: log_of(record) if record["status"] != "completed" else "",
        })
    columns = [JOB, *(FLAG_PREFIX + k for k in keys), STATUS, METRIC, *returned, DURATION, ERROR, LOG]
    return columns, rows


def ranked(records: Iterable[Dict[str, Any]], metric: Optional[str], maximize: bool) -> List[Dict[str, Any]]:
    """Completed records that have the metric, best first."""
    scored = [r for r in records if r.get("status") == "completed"
              and metric_of(r.get("return_value"), metric) is not None]
    scored.sort(key=lambda r: metric_of(r["return_value"], metric) or 0.0, reverse=maximize)
    return scored


def metric_keys(records: Iterable[Dict[str, Any]]) -> List[str]:
    """The dotted keys with a number in any dict return value: the metrics one could rank by."""
    keys: Dict[str, None] = {}
    for record in records:
        value = record.get("return_value")
        if isinstance(value, dict):
            keys.update(dict.fromkeys(k for k, v in scalar_items(value) if is_number(v)))
    return list(keys)


def metric_label(metric: Optional[str]) -> str:
    """How the metric is named in the summary and the report."""
    return metric or "return value"
