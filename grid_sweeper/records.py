"""Sweep records: results.jsonl as jobs end, results.csv and summary.yaml at the end, resume.

Every job has its own record (`grid_sweeper.job_records`), written by the job's process or, for a
job that could not, by its launcher. `results.jsonl` is built from them by the live sweep: one
JSON object per finished job, appended, flushed and fsynced the moment the sweep hears of the end,
and repaired from the jobs' records when the sweep starts and ends (a torn line, jobs that ended
while no sweep process listened). Readers take the jobs' records over its lines.
"""
from __future__ import annotations

import csv
import json
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from grid_sweeper.events import COMPLETED, FAILED, JobEvent
from grid_sweeper.metrics import log_of, metric_keys, metric_label, metric_of, ranked, table

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
SUMMARY_YAML = "summary.yaml"


def _iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


def jsonable(value: Any) -> Any:
    """JSON-able values as they are; numpy scalars as numbers; anything else as its repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        return int(value) if isinstance(value, int) else str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return jsonable(item())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v) for k, v in value.items()}
    return repr(value)


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of an error text (launchers put the reason first), shortened."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def record_of(event: JobEvent) -> Dict[str, Any]:
    """The results.jsonl object of a finished job."""
    return {
        "job": event.number,
        "overrides": list(event.overrides),
        "status": event.status,
        "return_value": jsonable(event.return_value) if event.status == COMPLETED else None,
        "error": one_line(event.error) if event.status == FAILED else "",
        "start": _iso(event.start),
        "end": _iso(event.end),
        "duration": round(event.duration, 6) if event.duration is not None else None,
        "job_id": event.job_id,
        "output_dir": event.output_dir,
        "logs": dict(event.logs),
    }


def event_of_record(record: Dict[str, Any]) -> JobEvent:
    """The JobEvent a record was made of (for listeners that hear of jobs from their records)."""

    def stamp(text: Optional[str]) -> Optional[float]:
        return datetime.fromisoformat(text).timestamp() if text else None

    failed = record.get("status") == FAILED
    return JobEvent(
        number=int(record["job"]), overrides=list(record.get("overrides") or []),
        status=FAILED if failed else COMPLETED, job_id=str(record.get("job_id") or ""),
        output_dir=str(record.get("output_dir") or ""), start=stamp(record.get("start")),
        end=stamp(record.get("end")), return_value=record.get("return_value"),
        error=str(record.get("error") or ""), logs=dict(record.get("logs") or {}),
    )


def load_results(sweep_dir: Path) -> Dict[int, Dict[str, Any]]:
    """Job number -> its record: the job's own, else its last line in results.jsonl (torn lines
    are skipped)."""
    from grid_sweeper.job_records import all_records

    records, _ = _jsonl_records(Path(sweep_dir) / RESULTS_JSONL)
    records.update(all_records(sweep_dir))
    return records


def _jsonl_records(path: Path) -> Tuple[Dict[int, Dict[str, Any]], List[int]]:
    """results.jsonl's last record per job, and the numbers (from 1) of lines that hold none."""
    records: Dict[int, Dict[str, Any]] = {}
    bad: List[int] = []
    if not path.exists():
        return records, bad
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                bad.append(number)
                continue
            if isinstance(record, dict) and isinstance(record.get("job"), int):
                records[record["job"]] = record
            else:
                bad.append(number)
    return records, bad


def repair_results(sweep_dir: Path) -> Tuple[List[int], int]:
    """Make results.jsonl hold every job's record: lines that hold none (torn by a crash mid-write,
    garbage) are dropped, and the jobs' records it lacks are added. Returns the dropped line numbers
    and how many records were added. For the process that holds the sweep dir only."""
    from grid_sweeper.job_records import all_records

    path = Path(sweep_dir) / RESULTS_JSONL
    lines, bad = _jsonl_records(path)
    missing = [r for n, r in sorted(all_records(sweep_dir).items()) if lines.get(n) != r]
    if bad:
        kept = []
        with open(path, "rb") as old:
            for number, line in enumerate(old, start=1):
                if number not in bad:
                    kept.append(line if line.endswith(b"\n") else line + b"\n")
        tmp = path.with_name(f".{path.name}.repair")
        with open(tmp, "wb") as new:
            new.writelines(kept)
            new.writelines((json.dumps(r) + "\n").encode() for r in missing)
            new.flush()
            os.fsync(new.fileno())
        os.replace(tmp, path)
    elif missing:
        _end_with_newline(path)
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in missing)
            out.flush()
            os.fsync(out.fileno())
    return bad, len(missing)


def _end_with_newline(path: Path) -> None:
    if not path.exists():
        return
    with open(path, "rb+") as data:
        data.seek(0, os.SEEK_END)
        if data.tell():
            data.seek(-1, os.SEEK_END)
            if data.read(1) != b"\n":
                data.write(b"\n")


class SweepRecorder:
    """A JobListener that writes the records and feeds the progress display."""

    def __init__(
        self,
        sweep_dir: Path,
        total: int,
        swept_keys: Sequence[str] = (),
        max_failure_rate: float = 1.0,
        progress: Any = None,
        already_done: int = 0,
    ) -> None:
        if not 0 <= max_failure_rate <= 1:
            raise ValueError(f"max_failure_rate must lie in 0..1, got {max_failure_rate}")
        self.sweep_dir = Path(sweep_dir)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.total = total
        self.swept_keys = list(swept_keys)
        self.max_failure_rate = max_failure_rate
        self.progress = progress
        self.records: Dict[int, Dict[str, Any]] = {}
        self.running: Dict[int, JobEvent] = {}
        self.failed = 0
        self.already_done = already_done
        self.stopped_for_failures = False
        self._lock = threading.Lock()
        self._file = open(self.sweep_dir / RESULTS_JSONL, "a", encoding="utf-8")

    # -- JobListener ---------------------------------------------------------------------------
    def job_started(self, event: JobEvent) -> None:
        with self._lock:
            self.running[event.number] = event
            self._show()

    def job_finished(self, event: JobEvent) -> None:
        """Record the job's end: its own record when it wrote one (completed with what only the
        launcher knows), else the launcher's view, which then becomes its record."""
        from grid_sweeper.job_records import claim, replace, with_launcher_view

        with self._lock:
            if event.number in self.records:
                return
            seen = record_of(event)
            record = claim(self.sweep_dir, seen, own=False)
            if record.get("recorded_by") != "launcher":  # the job's own record
                merged = with_launcher_view(record, seen)
                if merged != record:
                    replace(self.sweep_dir, merged)
                record = merged
            self.running.pop(event.number, None)
            self.records[event.number] = record
            self.failed += record.get("status") == FAILED
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            if self.failed > self.max_failure_rate * self.total and not self.stopped_for_failures:
                self.stopped_for_failures = True
            if self.progress is not None:
                self.progress.job_finished(record, self._counts())
            self._show()

    def accepting_new_jobs(self) -> bool:
        return not self.stopped_for_failures

    # -- state ---------------------------------------------------------------------------------
    def _counts(self) -> Dict[str, int]:
        return {
            "done": len(self.records) + self.already_done,
            "running": len(self.running),
            "failed": self.failed,
            "total": self.total,
        }

    def _show(self) -> None:
        if self.progress is not None:
            self.progress.update(self._counts())

    def recorded(self, number: int) -> bool:
        with self._lock:
            return number in self.records

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()
        if self.progress is not None:
            self.progress.close()

    # -- end of sweep --------------------------------------------------------------------------
    def write_csv(self, metric: Optional[str] = None) -> Path:
        """results.csv: the table of `grid_sweeper.metrics.table` (prefixed flag and return columns)."""
        return write_csv(self.sweep_dir, self.swept_keys, metric)


def write_csv(sweep_dir: Path, swept: Sequence[str] = (), metric: Optional[str] = None) -> Path:
    """results.csv from results.jsonl: one row per job, in job order."""
    records = sorted(load_results(sweep_dir).values(), key=lambda r: r["job"])
    columns, rows = table(records, swept, metric)
    path = Path(sweep_dir) / RESULTS_CSV
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def summarize(
    sweep_dir: Path, total: int, maximize: bool = False, best: int = 5, metric: Optional[str] = None
) -> Dict[str, Any]:
    """The sweep's summary from results.jsonl: counts, the best jobs by the metric, failed jobs."""
    records = sorted(load_results(sweep_dir).values(), key=lambda r: r["job"])
    completed = [r for r in records if r["status"] == COMPLETED]
    failed = [r for r in records if r["status"] == FAILED]
    scored = ranked(completed, metric, maximize)
    return {
        "total": total,
        "completed": len(completed),
        "failed": len(failed),
        "not_run": total - len(records),
        "metric": metric,
        "objective": "maximize" if maximize else "minimize",
        "unscored": len(completed) - len(scored),
        "metric_keys": metric_keys(completed) if len(scored) < len(completed) else [],
        "best": [
            {"job": r["job"], "metric": metric_of(r["return_value"], metric), "overrides": r["overrides"],
             "return_value": r["return_value"]}
            for r in scored[:best]
        ],
        "failures": [
            {"job": r["job"], "overrides": r["overrides"], "error": r.get("error", ""), "log": log_of(r)}
            for r in failed
        ],
    }


def summary_text(summary: Dict[str, Any]) -> str:
    """The summary as the lines printed at the end of a sweep."""
    lines = [
        f"Sweep summary: {summary['completed']} completed, {summary['failed']} failed"
        + (f", {summary['not_run']} not run" if summary["not_run"] else "")
        + f" of {summary['total']}"
    ]
    label = metric_label(summary.get("metric"))
    if summary["best"]:
        word = "highest" if summary["objective"] == "maximize" else "lowest"
        lines.append(f"Best jobs ({word} {label}):")
        for entry in summary["best"]:
            lines.append(f"  #{entry['job']} {entry['metric']!r:<12} {' '.join(entry['overrides'])}")
    keys = ", ".join(summary.get("metric_keys") or [])
    if summary.get("unscored") and summary.get("metric"):
        lines.append(f"{summary['unscored']} completed job(s) returned no number at '{summary['metric']}'"
                     + (f"; keys with numbers: {keys}" if keys else ""))
    elif summary.get("unscored") and keys:
        lines.append(f"{summary['unscored']} completed job(s) returned a dict and no metric was chosen: "
                     f"rank them with metric=KEY (hydra.sweeper.metric, gridsweep --metric), one of: {keys}")
    if summary["failures"]:
        lines.append("Failed jobs:")
        for entry in summary["failures"]:
            lines.append(f"  #{entry['job']} {' '.join(entry['overrides'])}: {entry['error']}")
            if entry["log"]:
                lines.append(f"      log: {entry['log']}")
    return "\n".join(lines)


def write_summary(sweep_dir: Path, summary: Dict[str, Any]) -> Path:
    """summary.yaml: the summary, as YAML."""
    import yaml

    path = Path(sweep_dir) / SUMMARY_YAML
    path.write_text(yaml.safe_dump(summary, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def conclude(
    sweep_dir: Path, total: int, swept: Sequence[str] = (), metric: Optional[str] = None,
    maximize: bool = False, report: bool = False,
) -> Tuple[Dict[str, Any], str]:
    """The end of a sweep: results.csv, summary.yaml (and report.html); the summary and its text.

    The text is the summary, then where each file is, so that a finished sweep says where to look.
    """
    sweep_dir = Path(sweep_dir)
    files = [write_csv(sweep_dir, swept, metric)]
    summary = summarize(sweep_dir, total, maximize=maximize, metric=metric)
    files.append(write_summary(sweep_dir, summary))
    notes = []
    if report:
        from grid_sweeper.report import ReportUnavailable, write_report

        try:
            files.append(write_report(sweep_dir, metric, maximize))
        except ReportUnavailable as error:
            notes.append(f"report.html not written: {error}")
    lines = [summary_text(summary), *notes]
    lines += [f"{path.name}: {path.absolute()}" for path in files]
    return summary, "\n".join(lines)
