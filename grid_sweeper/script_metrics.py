"""A script reports a metric without any import: the last line of its stdout, a number or JSON object."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional

from grid_sweeper.events import COMPLETED, JobEvent

_TAIL_BYTES = 64 * 1024


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def metric_of(line: str) -> Optional[Any]:
    """The number or JSON object on `line`, or None."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def stdout_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class MetricListener:
    """Forwards job events, setting a completed job's return value to its reported metric.

    Every job's dir is `<sweep dir>/<number>`; where the backend keeps the logs elsewhere (Slurm),
    `stdout.log` and `stderr.log` there link to them, and `exit_code` is written when known.
    """

    def __init__(self, inner: Any, sweep_dir: Optional[Path] = None) -> None:
        self.inner = inner
        self.sweep_dir = sweep_dir

    def _job_dir(self, event: JobEvent) -> None:
        if event.output_dir or self.sweep_dir is None:
            return
        job_dir = Path(self.sweep_dir, str(event.number))
        event.output_dir = str(job_dir)
        for name, key in (("stdout.log", "stdout"), ("stderr.log", "stderr")):
            target, link = event.logs.get(key), job_dir / name
            if target and not link.exists():
                job_dir.mkdir(parents=True, exist_ok=True)
                link.symlink_to(Path(target).absolute())
        if event.status != COMPLETED:
            code = re.search(r"exit(?:ed with)? code (\d+)", event.error)
            (job_dir / "exit_code").write_text(f"{code.group(1) if code else 'unknown'}\n")

    def job_started(self, event: JobEvent) -> None:
        self.inner.job_started(event)

    def job_finished(self, event: JobEvent) -> None:
        self._job_dir(event)
        if event.status == COMPLETED:
            text = event.return_value if isinstance(event.return_value, str) else (
                stdout_tail(event.logs.get("stdout", "")) if event.logs.get("stdout") else "")
            metric = metric_of(last_line(text))
            event.return_value = metric if metric is not None else 0
            if event.output_dir:
                Path(event.output_dir, "exit_code").write_text("0\n")
        elif event.logs.get("stderr"):
            reason = last_line(stdout_tail(event.logs["stderr"]))
            if reason and reason not in event.error:
                event.error = f"{event.error}: {reason}" if event.error else reason
        self.inner.job_finished(event)

    def accepting_new_jobs(self) -> bool:
        return self.inner.accepting_new_jobs()
