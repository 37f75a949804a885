"""A JobListener for tests: records events, notes when each end was seen, can stop accepting jobs."""
import time
from typing import List

from grid_sweeper.events import JobEvent


class Recorder:
    def __init__(self, accept_first: int = 10**9) -> None:
        self.started: List[JobEvent] = []
        self.finished: List[JobEvent] = []
        self.accept_first = accept_first
        self.asked = 0

    def job_started(self, event: JobEvent) -> None:
        self.started.append(event)

    def job_finished(self, event: JobEvent) -> None:
        event.end_seen = time.time()  # type: ignore[attr-defined]
        self.finished.append(event)

    def accepting_new_jobs(self) -> bool:
        self.asked += 1
        return self.asked <= self.accept_first
