"""One sweep per sweep dir: a live sweep holds its dir, and no new sweep is written over an old one.

A live sweep holds an exclusive `flock` on `<sweep dir>/.grid_sweep.lock`, which the kernel
releases when the process dies (kill -9 included), so a crashed sweep never leaves a stale lock.
The lock file names its holder (pid, host, start time) for the refusal of a second sweep. A dir
that holds a finished or dead sweep (its `grid_sweep.yaml`) is refused unless the sweep is resumed:
two sweeps' records never mix.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, Optional

LOCK_FILE = ".grid_sweep.lock"
log = logging.getLogger(__name__)


class SweepDirInUse(Exception):
    """Another live sweep holds the sweep dir."""


class SweepDirLock:
    """The live sweep's hold on its dir (exclusive, non-blocking, released by the OS on death)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / LOCK_FILE
        self.fd: Optional[int] = None

    def acquire(self, wait: bool = False) -> SweepDirLock:
        """Hold the dir; `wait`: until the live sweep holding it ends, else refuse at once."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                # a filesystem without flock (Lustre mounted noflock: ENOSYS; ENOLCK, EOPNOTSUPP):
                # the sweep runs, unguarded, rather than be refused for a lock nobody holds
                os.close(fd)
                log.warning("%s: cannot lock the sweep dir (%s); a second sweep into it would not "
                            "be refused", self.path.parent, error.strerror)
                return self
            holder = _read_holder(fd)
            os.close(fd)
            raise SweepDirInUse(
                f"{self.path.parent} is in use by a live sweep (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, started {holder.get('started', '?')}): wait for it to end, "
                "or choose another sweep dir") from None
        self.fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError:  # a full disk: the lock holds, only the holder's name is missing
            pass
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)  # for forked job processes that share the descriptor too
        os.close(self.fd)
        self.fd = None


def _read_holder(fd: int) -> Dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def fresh_dir(pattern: str) -> Path:
    """A new dir named by `time.strftime(pattern)`, made here: `_2`, `_3`... when two sweeps start
    in the same second (the `mkdir` is the atomic claim), so default dirs never collide."""
    base = time.strftime(pattern)
    for attempt in range(1, 10_000):
        candidate = Path(base if attempt == 1 else f"{base}_{attempt}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free sweep dir next to {base}")


#: The files that make a sweep's records (job dirs are the launcher's, as with Hydra's sweepers).
RECORD_FILES = ("grid_sweep.yaml", "results.jsonl", "results.csv", "summary.yaml", "report.html", "multirun.yaml",
                ".grid_sweep")


def archive_records(sweep_dir: Path) -> Path:
    """Move an earlier sweep's records to `<sweep dir>/previous/<time>/`, so that a new sweep in
    the same dir (Hydra's reuse of a sweep dir) never mixes with them."""
    target = Path(sweep_dir) / "previous" / time.strftime("%Y-%m-%d_%H-%M-%S")
    suffix = 1
    while target.exists():
        suffix += 1
        target = target.with_name(f"{target.name.split('_v')[0]}_v{suffix}")
    target.mkdir(parents=True)
    for name in RECORD_FILES:
        if (Path(sweep_dir) / name).exists():
            os.replace(Path(sweep_dir) / name, target / name)
    return target


def live_holder(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    """The live sweep holding `sweep_dir` (pid, host, started), or None when no sweep runs there."""
    import fcntl

    path = Path(sweep_dir) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_holder(fd)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
