"""Sweep progress: a live line on a terminal (rich), plain log lines elsewhere (CI, Slurm logs)."""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Shows done / running / failed / total, elapsed time and ETA as jobs start and end."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, live: Optional[bool] = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.live = self.stream.isatty() if live is None else live
        self._first_done: Optional[int] = None
        self._display: Any = None
        if self.live:
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text_type = Text
        console = Console(file=self.stream)
        self._display = Live(Text(""), console=console, refresh_per_second=4, transient=False,
                             redirect_stdout=False, redirect_stderr=False)
        self._display.start()

    def line(self, counts: Dict[str, int]) -> str:
        elapsed = time.monotonic() - self.started
        done, total = counts["done"], counts["total"]
        if self._first_done is None:
            self._first_done = done  # jobs finished before this run (resume) don't count for ETA
        finished_here = done - self._first_done
        if finished_here and done < total:
            eta = _clock(elapsed / finished_here * (total - done))
        else:
            eta = "--:--" if done < total else "00:00"
        return (f"[sweep] {done}/{total} done, {counts['running']} running, {counts['failed']} failed"
                f" | elapsed {_clock(elapsed)} | ETA {eta}")

    def update(self, counts: Dict[str, int]) -> None:
        if self._display is not None:
            self._display.update(self._text_type(self.line(counts)))

    def job_finished(self, record: Dict[str, Any], counts: Dict[str, int]) -> None:
        if self._display is not None:
            return
        duration = record.get("duration")
        took = f" in {duration:.1f}s" if isinstance(duration, (int, float)) else ""
        detail = f": {record['error']}" if record["status"] == "failed" else ""
        self.stream.write(f"[sweep] job #{record['job']} {record['status']}{took}{detail} | "
                          f"{self.line(counts)[8:]}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
