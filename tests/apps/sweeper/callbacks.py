"""A Hydra callback that appends each event to a file, to prove callbacks fire."""
from typing import Any

from hydra.experimental.callback import Callback


class RecordingCallback(Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, event: str) -> None:
        with open(self.path, "a") as f:
            f.write(event + "\n")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._write("multirun_start")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._write("multirun_end")

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        self._write("job_start")

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        self._write(f"job_end {job_return.status.name}")
