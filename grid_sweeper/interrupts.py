"""Ctrl-C, SIGTERM and SIGHUP end a sweep the same way everywhere: the log lines, no traceback,
130 / 143 / 129.

SIGHUP is what an ssh disconnect sends: it ends the sweep like SIGTERM (what finished recorded,
the resume line), never silently. Local jobs are stopped; Slurm jobs, which record themselves, go
on, for `gridsweep wait` or a resume to collect.

`Stopped` is the KeyboardInterrupt that carries which signal stopped the sweep; `exit_code` is the
shell's convention (128 + signal number) for any KeyboardInterrupt, the local pool's `Interrupted`
included (it carries `signum` too).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

#: Signals besides SIGINT that stop a sweep as Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The sweep was stopped by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def exit_code(interrupt: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP: 128 + the signal's number."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Stopped` like Ctrl-C raises KeyboardInterrupt (main
    thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before if handler_before is not None else signal.SIG_DFL)
