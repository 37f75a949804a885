"""Where a SLURM job's stdout/stderr are, their last lines, and links to them beside the job."""
from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Dict, Optional

from submitit.core.utils import JobPaths

log = logging.getLogger(__name__)


def log_paths(folder: str, job_id: str, task: int = 0, stderr_to_stdout: bool = False
              ) -> Dict[str, str]:
    """The stdout (and stderr) files of one job (array element) and task."""
    paths = JobPaths(folder, job_id=job_id, task_id=task)
    logs = {"stdout": str(paths.stdout)}
    if not stderr_to_stdout:
        logs["stderr"] = str(paths.stderr)
    return logs


def array_log_patterns(folder: str) -> Dict[str, str]:
    """Slurm filename patterns (%A_%a for the element, %t for the task) of an array's logs."""
    paths = JobPaths(folder)
    return {
        name: str(path).replace("%j", "%A_%a")
        for name, path in (("stdout", paths.stdout), ("stderr", paths.stderr))
    }


_RUNNER_START = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\) - Starting with")


def start_time(stdout_path: str) -> Optional[float]:
    """When submitit's runner started the job, from the first line of its stdout log."""
    try:
        with open(stdout_path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline(500)
    except OSError:
        return None
    match = _RUNNER_START.search(first)
    if match is None:
        return None
    stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
    return stamp + int(match.group(2)) / 1000


def tail(path: str, lines: int = 15, max_chars: int = 3000) -> str:
    """The last lines of a text file ('' when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""
    return text[-max_chars:].rstrip()


def link_logs(logs: Dict[str, str], job_id: str, directory: str) -> Dict[str, str]:
    """Relative symlinks `slurm-<job id>.out|.err` in `directory` to the job's log files.

    Returns the links made; a failure (e.g. a filesystem without symlinks) is logged, not raised.
    """
    made: Dict[str, str] = {}
    suffix = {"stdout": "out", "stderr": "err"}
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        log.debug("cannot create %s for log links: %s", directory, exc)
        return made
    for name, target in logs.items():
        link = Path(directory) / f"slurm-{job_id}.{suffix.get(name, name)}"
        try:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(target, directory))
            made[name] = str(link)
        except OSError as exc:
            log.debug("cannot link %s to %s: %s", link, target, exc)
    return made
