"""A `gridsweep` job on a Slurm node: the script, then the job's own record, written there.

The launching process may be gone by the time the job ends (detached, hung up, killed), so the
job records itself in the sweep dir (`grid_sweeper.job_records`) the moment the script exits, with
the metric read from its stdout's last line, as `gridsweep` reads it locally.
"""
from __future__ import annotations

import os
import time
from typing import Any, List, Optional


class RecordedCommand:
    """Runs `argv` (its output to the job's log) and records the job; returns the script's stdout."""

    def __init__(self, argv: List[str], sweep_dir: str, number: int, overrides: List[str],
                 cwd: Optional[str] = None) -> None:
        self.argv = [str(a) for a in argv]
        self.sweep_dir = sweep_dir
        self.number = number
        self.overrides = list(overrides)
        self.cwd = cwd

    def __call__(self) -> str:
        from submitit.helpers import CommandFunction

        start = time.time()
        try:
            stdout = CommandFunction(self.argv, verbose=True, cwd=self.cwd)()
        except Exception as error:
            self._record(start, error=_failure(error))
            raise
        self._record(start, stdout=stdout)
        return stdout

    def _record(self, start: float, stdout: str = "", error: str = "") -> None:
        from grid_sweeper.events import COMPLETED, FAILED, JobEvent
        from grid_sweeper.job_records import claim
        from grid_sweeper.launch.job_env import job_logs, slurm_job_id
        from grid_sweeper.records import record_of
        from grid_sweeper.script_metrics import last_line, metric_of

        metric = metric_of(last_line(stdout)) if not error else None
        event = JobEvent(self.number, self.overrides, status=FAILED if error else COMPLETED,
                         job_id=slurm_job_id(), output_dir=os.path.join(self.sweep_dir, str(self.number)),
                         start=start, end=time.time(), return_value=metric if metric is not None else 0,
                         error=error, logs=job_logs())
        try:
            claim(self.sweep_dir, record_of(event))
        except OSError as failure:  # the launcher (or gridsweep wait) still records it from Slurm
            print(f"gridsweep: could not record job #{self.number}: {failure}", flush=True)


def _failure(error: BaseException) -> str:
    """`exited with code N: <last line of stderr>`, as gridsweep says it of local jobs."""
    from grid_sweeper.script_metrics import last_line

    cause: Any = error.__cause__
    code = getattr(cause, "returncode", None)
    reason = last_line(str(getattr(cause, "stderr", "") or error))
    head = f"exited with code {code}" if code is not None else type(error).__name__
    return f"{head}: {reason}" if reason else head
