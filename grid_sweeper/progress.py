"""Sweep progress: a live line on a terminal, plain log lines elsewhere (CI, Slurm logs, a pipe).

On a terminal, whatever else this process writes to that terminal while the live line is shown
(job output echoed as `[job N] ...`, log records, a task's prints with Hydra's basic launcher) is
printed *above* the live line: `sys.stdout`, `sys.stderr` and the logging handlers that write to
them go through a wrapper that clears the live line, writes whole lines, and draws it again. So
job output and progress never share a line.

A launcher that hands back whole batches (Hydra's basic launcher, joblib, submitit) reports no
job as it ends; then no ETA is shown, since nothing can know it.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, TextIO

CLEAR_LINE = "\r\x1b[2K"
REFRESH_S = 0.5


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """Shows done / running / failed / total, elapsed time and (when known) ETA as jobs end.

    `eta=False` for launchers that return whole batches: their jobs end, as far as anyone here can
    tell, all at once, so neither an ETA nor a running count would mean anything.
    """

    def __init__(
        self, total: int, stream: Optional[TextIO] = None, live: Optional[bool] = None, eta: bool = True
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.eta = eta
        self.started = time.monotonic()
        self.live = _isatty(self.stream) if live is None else live
        self._first_done: Optional[int] = None
        self._counts: Dict[str, int] = {"done": 0, "running": 0, "failed": 0, "total": total}
        self._display: Optional[LiveLine] = None
        if self.live:
            self._display = LiveLine(self.stream, lambda: self.line(self._counts))
            self._display.start()

    def line(self, counts: Dict[str, int]) -> str:
        elapsed = time.monotonic() - self.started
        done, total = counts["done"], counts["total"]
        if self._first_done is None:
            self._first_done = done  # jobs finished before this run (resume) don't count for ETA
        text = f"[sweep] {done}/{total} done, "
        if self.eta:
            text += f"{counts['running']} running, "
        text += f"{counts['failed']} failed | elapsed {_clock(elapsed)}"
        if self.eta:
            finished_here = done - self._first_done
            if finished_here and done < total:
                text += f" | ETA {_clock(elapsed / finished_here * (total - done))}"
            else:
                text += " | ETA --:--" if done < total else " | ETA 00:00"
        return text

    def update(self, counts: Dict[str, int]) -> None:
        self._counts = dict(counts)
        if self._display is not None:
            self._display.redraw()

    def job_finished(self, record: Dict[str, Any], counts: Dict[str, int]) -> None:
        self._counts = dict(counts)
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


class LiveLine:
    """One line at the bottom of a terminal, redrawn in place; other output goes above it."""

    def __init__(self, stream: TextIO, text: Any) -> None:
        self.stream = stream
        self.text = text
        self.lock = threading.RLock()
        self.active = False
        self._shown = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._wrappers: List[AboveLive] = []
        self._saved_streams: Dict[str, Any] = {}

    # -- the line -------------------------------------------------------------------------------
    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def redraw(self) -> None:
        with self.lock:
            if not self.active:
                return
            line = self.text()[: self._width()]  # never wraps, so one \r clears it
            self._raw(CLEAR_LINE + line)
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._raw(CLEAR_LINE)
            self._shown = False

    def _raw(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        with self.lock:
            self.active = True
            self._redirect()
            _ACTIVE.add(self)
        self.redraw()
        self._thread = threading.Thread(target=self._refresh, name="grid-sweep-progress", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.redraw()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self.lock:
            if not self.active:
                return
            for wrapper in self._wrappers:
                wrapper.flush_partial()
            self.redraw()
            self._raw("\n")  # the last state stays on screen
            self._shown = False
            self.active = False
            self._restore()
            _ACTIVE.discard(self)

    # -- what else writes to the terminal ---------------------------------------------------------
    def _redirect(self) -> None:
        """sys.stdout/sys.stderr and logging handlers on them write above the line (ttys only)."""
        for name in ("stdout", "stderr"):
            real = getattr(sys, name)
            if _isatty(real) and not isinstance(real, AboveLive):
                wrapper = AboveLive(self, real)
                self._wrappers.append(wrapper)
                self._saved_streams[name] = real
                setattr(sys, name, wrapper)
        by_real = {id(w.real): w for w in self._wrappers}
        for handler in _stream_handlers():
            wrapper = by_real.get(id(handler.stream))
            if wrapper is not None:
                handler.setStream(wrapper)  # type: ignore[arg-type]

    def _restore(self) -> None:
        for name, real in self._saved_streams.items():
            if isinstance(getattr(sys, name), AboveLive):
                setattr(sys, name, real)
        for handler in _stream_handlers():  # also those made while the line was shown
            if isinstance(handler.stream, AboveLive) and handler.stream.owner is self:
                handler.setStream(handler.stream.real)
        self._saved_streams.clear()


class AboveLive:
    """A text stream whose whole lines are printed above a live line."""

    def __init__(self, owner: LiveLine, real: TextIO) -> None:
        self.owner = owner
        self.real = real
        self._partial = ""

    def write(self, text: str) -> int:
        owner = self.owner
        if not owner.active:
            return self.real.write(text)
        with owner.lock:
            data = self._partial + text
            complete, _, self._partial = data.rpartition("\n")
            if complete or (not self._partial and data):
                owner.clear()
                self.real.write(complete + "\n")
                self.real.flush()
                owner.redraw()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush_partial(self) -> None:
        if self._partial:
            self.owner.clear()
            self.real.write(self._partial.rsplit("\r", 1)[-1] + "\n")
            self._partial = ""

    def flush(self) -> None:
        try:
            self.real.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return _isatty(self.real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _stream_handlers() -> List[logging.StreamHandler]:
    loggers: List[Any] = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    handlers = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handlers.append(handler)
    return handlers


_ACTIVE: weakref.WeakSet[LiveLine] = weakref.WeakSet()


def _forget_in_child() -> None:
    """A forked job's process has no live line: its copies write straight through, new locks."""
    for display in list(_ACTIVE):
        display.active = False
        display.lock = threading.RLock()
    _ACTIVE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
