"""What the local pool is asked to run (`JobSpec`) and what it hands back (`JobResult`)."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

from ..events import COMPLETED, FAILED

STDOUT_NAME = "stdout.log"
STDERR_NAME = "stderr.log"


class Verdict(NamedTuple):
    """How a job's return value is judged: success, the value to report, a one-line error."""

    ok: bool
    value: Any
    error: str = ""


@runtime_checkable
class Preparable(Protocol):
    """A job target with work the launcher can do ahead of the job's start, while it waits on
    running jobs, so that a forked job inherits it instead of doing it on its own clock (a
    Hydra job's config). `forget` drops it in the launcher once the job's process has it."""

    def prepare(self) -> None: ...

    def forget(self) -> None: ...


@dataclass
class JobSpec:
    """One job: a callable run in a child process, or an argv command list.

    Logs go to `stdout`/`stderr`, by default `<output_dir>/stdout.log` and `stderr.log`; a callable
    may move them once it knows its real output dir (see `child.relocate_output`).
    """

    number: int
    target: Optional[Callable[[], Any]] = None
    argv: Optional[Sequence[str]] = None
    output_dir: str = ""
    overrides: List[str] = field(default_factory=list)
    cwd: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    timeout_s: Optional[float] = None
    judge: Optional[Callable[[Any], Verdict]] = None
    label: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.target is None) == (self.argv is None):
            raise ValueError("a JobSpec needs exactly one of `target` and `argv`")
        if isinstance(self.argv, (str, bytes)):
            raise TypeError("argv must be a list of arguments, not a shell string")
        if not (self.output_dir or (self.stdout and self.stderr)):
            raise ValueError("a JobSpec needs `output_dir` or both `stdout` and `stderr`")

    @property
    def stdout_path(self) -> str:
        return os.path.abspath(self.stdout or os.path.join(self.output_dir, STDOUT_NAME))

    @property
    def stderr_path(self) -> str:
        return os.path.abspath(self.stderr or os.path.join(self.output_dir, STDERR_NAME))

    @property
    def name(self) -> str:
        return self.label or f"job {self.number}"


@dataclass
class JobResult:
    """The end of one job, successful or not."""

    spec: JobSpec
    status: str = FAILED
    started: bool = False
    value: Any = None
    event_value: Any = None
    error: str = ""
    exception: Optional[BaseException] = None
    traceback: str = ""
    returncode: Optional[int] = None
    pid: Optional[int] = None
    gpus: Tuple[str, ...] = ()
    start: Optional[float] = None
    end: Optional[float] = None
    timed_out: bool = False
    output_dir: str = ""
    stdout_path: str = ""
    stderr_path: str = ""

    @property
    def logs(self) -> Dict[str, str]:
        if not self.started:
            return {}
        return {"stdout": self.stdout_path, "stderr": self.stderr_path}

    def stderr_tail(self, lines: int = 8, max_bytes: int = 8192) -> List[str]:
        """The last lines of the job's stderr file (empty when there is none)."""
        if not self.started:
            return []
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(f.tell() - max_bytes, 0))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def describe(self) -> str:
        """A multi-line account of a failure: reason, last stderr lines, log paths."""
        parts = [f"{self.spec.name} failed: {self.error}"]
        tail = self.stderr_tail()
        if tail:
            parts.append("  last lines of stderr:")
            parts.extend(f"    {line}" for line in tail)
        for kind, path in self.logs.items():
            parts.append(f"  {kind}: {path}")
        return "\n".join(parts)


class JobFailed(RuntimeError):
    """The exception a launcher puts in a failed job's return; its message says why and where."""

    def __init__(self, message: str, result: Optional[JobResult] = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (str(self),))


class Interrupted(KeyboardInterrupt):
    """The pool stopped on SIGINT/SIGTERM after ending its running jobs; carries all results."""

    def __init__(self, signum: int, results: List[JobResult]) -> None:
        name = signal.Signals(signum).name
        done = sum(r.status == COMPLETED for r in results)
        started = sum(r.started for r in results)
        super().__init__(
            f"the sweep was interrupted by {name}: {done} of {len(results)} job(s) completed, "
            f"{started - done} stopped or failed, {len(results) - started} not started"
        )
        self.signum = signum
        self.results = results
