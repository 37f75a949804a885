"""Each job's own record, written into the sweep dir by whoever sees the job end first.

A job's record is `<sweep dir>/.grid_sweep/records/<number>.json`, the same object as its line
of `results.jsonl`. The job's own process writes it the moment the job ends (a Hydra job through
the task wrapper the grid sweeper hands every launcher; a `grid_local` child; a Slurm task on its
node), so a result never depends on the launching process surviving. The launcher writes it only
for a job that could not (killed, timed out, lost by Slurm).

Writing is create-if-absent (a temporary file, fsynced, then hard-linked to its name), so the
first record of a job stands and a job is never recorded twice: a Slurm requeue, a launcher that
notices a job's end after the job recorded it, or two sweeps racing over one job leave one record.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

STATE_DIR = ".grid_sweep"
RECORDS_DIR = f"{STATE_DIR}/records"


def records_dir(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / RECORDS_DIR


def record_path(sweep_dir: Path, number: int) -> Path:
    return records_dir(sweep_dir) / f"{int(number)}.json"


#: marks a record its launcher wrote for a job that did not record itself (`claim(own=False)`)
BY_LAUNCHER = "launcher"


def claim(sweep_dir: Path, record: Dict[str, Any], own: bool = True) -> Dict[str, Any]:
    """Write a job's record unless the job already has one; the record that stands.

    `own`: written by the job's own process. A launcher's record (`own=False`: what it concluded
    of a job it saw end without one) gives way to the job's own should that come later (a job
    Slurm's controller lost track of, that still ran to its end)."""
    if not own:
        record = {**record, "recorded_by": BY_LAUNCHER}
    path = record_path(sweep_dir, record["job"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temporary(path, record)
    try:
        os.link(tmp, path)
    except FileExistsError:
        standing = read(path)
        if own and standing is not None and standing.get("recorded_by") == BY_LAUNCHER:
            os.replace(tmp, path)
            return record
        return standing or record
    except OSError as error:  # a filesystem without hard links: no-replace by a check, then rename
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if path.exists():
            return read(path) or record
        os.replace(tmp, path)
        return record
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return record


def replace(sweep_dir: Path, record: Dict[str, Any]) -> None:
    """Rewrite a job's record atomically (the launcher adding what only it knows: logs, job id)."""
    path = record_path(sweep_dir, record["job"])
    tmp = _write_temporary(path, record)
    os.replace(tmp, path)


def read(path: Path) -> Optional[Dict[str, Any]]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("job"), int) else None


def all_records(sweep_dir: Path) -> Dict[int, Dict[str, Any]]:
    """Job number -> its own record, for every job that has one."""
    found: Dict[int, Dict[str, Any]] = {}
    directory = records_dir(sweep_dir)
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if not name.endswith(".json") or not name[:-5].isdigit():
            continue
        record = read(directory / name)
        if record is not None:
            found[record["job"]] = record
    return found


def forget(sweep_dir: Path, numbers: Iterable[int]) -> None:
    """Drop the records of jobs that run again (a resume reruns failed jobs): the new run's record
    must be able to stand. Their old lines stay in results.jsonl as history."""
    for number in numbers:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record_path(sweep_dir, number))


def with_launcher_view(own: Dict[str, Any], launcher: Dict[str, Any]) -> Dict[str, Any]:
    """A job's own record completed with what only its launcher knows (its job id, log files,
    output dir); how the job ended stays the job's word."""
    merged = dict(own)
    for key in ("job_id", "output_dir"):
        if not merged.get(key) and launcher.get(key):
            merged[key] = launcher[key]
    logs = {**(launcher.get("logs") or {}), **(own.get("logs") or {})}
    if logs:
        merged["logs"] = logs
    return merged


def _write_temporary(path: Path, record: Dict[str, Any]) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(record))
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp
