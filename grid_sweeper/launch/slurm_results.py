"""What goes to SLURM (tasks) and what comes back (results, and the errors of failed jobs)."""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from submitit.core.utils import JobPaths

from .slurm_logs import tail

NOT_SUBMITTED = "NOT_SUBMITTED"
TIMEOUT = "TIMEOUT"
_NOT_REQUEUED = "Job not requeued because:"


class SlurmJobError(RuntimeError):
    """A job that ended without a result: cancelled, timed out, out of memory, node failure..."""

    def __init__(self, message: str, job_id: str = "", state: str = "",
                 logs: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.logs = dict(logs or {})

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (str(self), self.job_id, self.state, self.logs))


class SlurmTaskError(SlurmJobError):
    """The submitted callable raised; the message holds the remote traceback."""


@dataclass
class SlurmTask:
    """One callable to run as one array element (it must pickle, with cloudpickle)."""

    fn: Callable[[], Any]
    number: int = 0
    overrides: List[str] = field(default_factory=list)
    label: str = ""


@dataclass
class SlurmResult:
    """How one task ended. `ok` means the callable returned `value`; otherwise `error` says why."""

    index: int
    task: SlurmTask
    job_id: str = ""
    state: str = ""
    ok: bool = False
    value: Any = None
    error: Optional[BaseException] = None
    logs: Dict[str, str] = field(default_factory=dict)
    start: Optional[float] = None
    end: Optional[float] = None

    @property
    def one_line_error(self) -> str:
        return one_line(self.error) if self.error is not None else ""


def one_line(exc: Any) -> str:
    """`Type: first line of the message` (our own errors' messages stand alone)."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, SlurmJobError) or not isinstance(exc, BaseException):
        return first
    name = type(exc).__name__
    return first if first.startswith(name) else f"{name}: {first}" if first else name


def result_files(folder: str, job_id: str, num_tasks: int) -> List[Path]:
    return [JobPaths(folder, job_id=job_id, task_id=t).result_pickle for t in range(num_tasks)]


def refresh_folder(path: Path) -> None:
    """Makes a network filesystem drop its cached listing of the folder (as submitit does)."""
    try:
        path.chmod(path.stat().st_mode)
    except OSError:
        pass


def read_outcome(path: Path) -> Tuple[str, Any]:
    """The `(outcome, value)` pair submitit's runner pickled: ('success', value) or
    ('error', traceback text). An unreadable file is an error outcome."""
    try:
        with open(path, "rb") as handle:
            outcome, value = pickle.load(handle)  # noqa: S301 - written by our own jobs
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the job's failure
        return "error", f"cannot read the result file {path}: {type(exc).__name__}: {exc}"
    return str(outcome), value


def _logs_text(logs: Dict[str, str]) -> str:
    return ", ".join(f"{name} {path}" for name, path in logs.items())


def _stderr_tail(logs: Dict[str, str]) -> str:
    text = tail(logs.get("stderr") or logs.get("stdout", ""))
    return f"\nlast lines of its log:\n{text}" if text else ""


def ended_without_result(job_id: str, state_text: str, state: str, logs: Dict[str, str]
                         ) -> SlurmJobError:
    """Error of a job Slurm ended (or forgot) before it wrote a result."""
    return SlurmJobError(
        f"Slurm job {job_id} ended {state_text} without a result; logs: {_logs_text(logs)}"
        + _stderr_tail(logs),
        job_id, state, logs,
    )


def not_requeued_reason(text: str) -> Optional[str]:
    """The reason submitit gave for not requeuing a timed-out job, if `text` carries one."""
    if _NOT_REQUEUED not in text:
        return None
    return text.split(_NOT_REQUEUED, 1)[1].strip().splitlines()[0].strip().rstrip(".")


def time_limit_error(job_id: str, reason: str, logs: Dict[str, str]) -> SlurmJobError:
    return SlurmJobError(
        f"Slurm job {job_id} reached its time limit (TIMEOUT) and was not requeued ({reason}); "
        f"logs: {_logs_text(logs)}",
        job_id, TIMEOUT, logs,
    )


def task_error(job_id: str, trace: str, logs: Dict[str, str]) -> SlurmJobError:
    """Error of a job whose callable raised (`trace` is the remote traceback)."""
    reason = not_requeued_reason(trace)
    if reason is not None:
        return time_limit_error(job_id, reason, logs)
    return SlurmTaskError(
        f"{exception_line(trace)}\n(Slurm job {job_id}; logs: {_logs_text(logs)})\n{trace}",
        job_id, "FAILED", logs,
    )


def exception_line(trace: str) -> str:
    """`Type: message` of the last exception in a traceback; a last exception without a message
    gets its cause's line appended (e.g. submitit's FailedJobError of a failed command)."""
    skip = ("Traceback", "The above exception", "During handling")
    lines = [line.strip() for line in str(trace).splitlines()
             if line.strip() and not line[:1].isspace() and not line.startswith(skip)]
    if not lines:
        return "unknown error"
    last = lines[-1]
    if ":" not in last and len(lines) > 1:
        return f"{last} (from {lines[-2]})"
    return last


def not_submitted(reason: str) -> SlurmJobError:
    """Error of a job that never ran (`reason` starts with `not started: ` or is appended)."""
    text = reason if reason.startswith("not started") else f"not submitted to Slurm: {reason}"
    return SlurmJobError(text, "", NOT_SUBMITTED, {})
