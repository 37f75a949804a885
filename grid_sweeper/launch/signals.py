"""Catch SIGINT/SIGTERM while jobs run, so that the pool can stop them before it leaves."""
from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any, Dict, List, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: an ssh disconnect


class SignalTrap:
    """Context manager: records stop signals and wakes up a `select` on `fileno()`.

    Handlers are installed only in the main thread (elsewhere Python forbids it); the previous
    handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received: List[int] = []
        self._read: Optional[int] = None
        self._write: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    @property
    def signum(self) -> Optional[int]:
        return self.received[0] if self.received else None

    def fileno(self) -> Optional[int]:
        return self._read

    def fds(self) -> List[int]:
        return [fd for fd in (self._read, self._write) if fd is not None]

    def drain(self) -> None:
        if self._read is None:
            return
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        self.received.append(signum)
        if self._write is not None:
            try:
                os.write(self._write, b"\0")
            except (BlockingIOError, OSError):
                pass

    def __enter__(self) -> SignalTrap:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        for fd in self.fds():
            os.close(fd)
        self._read = self._write = None
