"""Job lifecycle events that launch backends report to whoever records the sweep."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

try:  # Python >= 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore


RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"


@dataclass
class JobEvent:
    """What is known about one job at a point of its life."""

    number: int
    overrides: List[str]
    status: str = RUNNING
    job_id: str = ""
    output_dir: str = ""
    start: Optional[float] = None
    end: Optional[float] = None
    return_value: Any = None
    error: str = ""
    logs: Dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> Optional[float]:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


class Detached(Exception):
    """The launcher submitted the jobs and left them running, each to record its own end
    (`hydra.launcher.detach`, `gridsweep run --detach`): the sweep is followed from its dir."""

    def __init__(self, count: int, where: str = "") -> None:
        super().__init__(f"{count} job(s) submitted{f' ({where})' if where else ''}")
        self.count = count
        self.where = where


class JobListener(Protocol):
    """Receives events from a launch backend; every method is optional to act on."""

    def job_started(self, event: JobEvent) -> None: ...

    def job_finished(self, event: JobEvent) -> None: ...

    def accepting_new_jobs(self) -> bool: ...


class NullListener:
    """Listener used when nobody records the sweep."""

    def job_started(self, event: JobEvent) -> None:
        return None

    def job_finished(self, event: JobEvent) -> None:
        return None

    def accepting_new_jobs(self) -> bool:
        return True
