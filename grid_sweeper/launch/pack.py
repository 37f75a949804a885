"""Packed Slurm allocations: a few allocations, each running a worker that pulls jobs from the sweep.

The launcher pickles every job into `<sweep dir>/.grid_sweep/pack/<launch>/<number>.pkl` and submits
`workers` allocations (one array), each running a `PackWorker`. A worker runs `grid_local`'s pool
inside its allocation (every job in its own process group, its own GPU set out of the allocation's
`CUDA_VISIBLE_DEVICES`, its own log files) and, whenever a slot is free, **claims** the next job
that has no record and no claim: `<sweep dir>/.grid_sweep/claims/<number>` created with O_EXCL on
the shared filesystem (no server). Claims are per sweep, not per launch, so the workers of a resumed
sweep and those a killed sweep left running never run one job twice. Jobs record themselves
(`grid_sweeper.job_records`); a job the worker had to stop is recorded by the worker when it failed
on its own (timeout, crash), and left without record, its claim released, when the worker itself
is stopped (Slurm's USR2 before the time limit, scancel): the other workers, a requeued worker or
a resume run it again.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..events import JobEvent
from .jobs import JobSpec

log = logging.getLogger(__name__)

PACK_DIR = ".grid_sweep/pack"
CLAIMS_DIR = ".grid_sweep/claims"


def claims_dir(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / CLAIMS_DIR


class PackStore:
    """One launch's pickled jobs, in the order they are claimed."""

    def __init__(self, sweep_dir: str, launch: str) -> None:
        self.sweep_dir = str(sweep_dir)
        self.root = Path(sweep_dir) / PACK_DIR / launch

    def write(self, number: int, job: Any, overrides: Sequence[str]) -> None:
        """Pickle one job (cloudpickle, as submitit does) where a worker can load it."""
        import cloudpickle

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{int(number)}.pkl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            cloudpickle.dump({"job": job, "overrides": list(overrides)}, out)
        os.replace(tmp, path)

    def write_order(self, numbers: Sequence[int]) -> None:
        (self.root / "order.json").write_text(json.dumps([int(n) for n in numbers]), encoding="utf-8")

    def order(self) -> List[int]:
        return [int(n) for n in json.loads((self.root / "order.json").read_text(encoding="utf-8"))]

    def load(self, number: int) -> Dict[str, Any]:
        import pickle

        with open(self.root / f"{int(number)}.pkl", "rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this sweep


def claim(sweep_dir: str, number: int, owner: Dict[str, Any]) -> bool:
    """Claim a job for `owner`; False when someone holds it already."""
    folder = claims_dir(Path(sweep_dir))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / str(int(number)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(owner))
    return True


def release(sweep_dir: str, number: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(claims_dir(Path(sweep_dir)) / str(int(number)))


def claims(sweep_dir: str) -> Dict[int, Dict[str, Any]]:
    """Job number -> who claimed it (its worker's Slurm job id, host, pid)."""
    found: Dict[int, Dict[str, Any]] = {}
    folder = claims_dir(Path(sweep_dir))
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        if path.name.isdigit():
            try:
                found[int(path.name)] = json.loads(path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                found[int(path.name)] = {}
    return found


def release_stale_claims(sweep_dir: str, live_workers: Sequence[str]) -> List[int]:
    """Before a launch: drop the claims of jobs without a record whose worker is no longer on
    Slurm (it died, was cancelled or requeued); the jobs of live workers stay theirs."""
    from grid_sweeper.job_records import record_path

    released = []
    for number, owner in claims(sweep_dir).items():
        if record_path(Path(sweep_dir), number).exists():
            continue
        if owner.get("worker") not in live_workers:
            release(sweep_dir, number)
            released.append(number)
    return released


class _WorkerRecords:
    """The pool's listener in a worker: a job the worker saw fail without its own record (timeout,
    crash, signal) is recorded by the worker; a completed one recorded itself."""

    def __init__(self, sweep_dir: str) -> None:
        self.sweep_dir = sweep_dir

    def job_started(self, event: JobEvent) -> None:
        return None

    def job_finished(self, event: JobEvent) -> None:
        from grid_sweeper.job_records import claim as claim_record
        from grid_sweeper.records import record_of

        claim_record(Path(self.sweep_dir), record_of(event))

    def accepting_new_jobs(self) -> bool:
        return True


class PackWorker:
    """What each packed allocation runs: claim, run as `grid_local` would, record; until no job is left."""

    def __init__(self, sweep_dir: str, launch: str, gpus_per_job: int = 0, max_parallel: Optional[int] = None,
                 job_timeout_min: Optional[float] = None, kill_grace_s: float = 5.0) -> None:
        self.sweep_dir = str(sweep_dir)
        self.launch = launch
        self.gpus_per_job = int(gpus_per_job)
        self.max_parallel = max_parallel
        self.job_timeout_min = job_timeout_min
        self.kill_grace_s = kill_grace_s
        self._stopping = False
        self._mine: List[int] = []

    # -- the worker --------------------------------------------------------------------------
    def __call__(self) -> Dict[str, Any]:
        from .local import Interrupted, LocalPool

        store = PackStore(self.sweep_dir, self.launch)
        self._order = store.order()
        self._cursor = 0
        self._store = store
        self._ends_at = _allocation_end()
        pool = LocalPool(max_parallel=self.max_parallel, gpus_per_job=self.gpus_per_job,
                         timeout_s=self.job_timeout_min * 60 if self.job_timeout_min else None,
                         kill_grace_s=self.kill_grace_s, listener=_WorkerRecords(self.sweep_dir))
        started = time.time()
        try:
            results = pool.run([], pull=self._next_job)
        except Interrupted as stop:  # scancel, a node going down: the stopped jobs are not lost
            self._release_unrecorded()
            raise SystemExit(128 + int(getattr(stop, "signum", signal.SIGTERM))) from None
        self._release_unrecorded()
        ran = [r.spec.number for r in results if r.started]
        print(f"pack worker {_worker_id()}: ran {len(ran)} job(s) in {time.time() - started:.1f} s", flush=True)
        return {"worker": _worker_id(), "jobs": ran}

    def _next_job(self) -> Optional[JobSpec]:
        from grid_sweeper.job_records import record_path

        if self._stopping or self._too_late():
            return None
        owner = {"worker": _worker_id(), "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        while self._cursor < len(self._order):
            number = self._order[self._cursor]
            self._cursor += 1
            if record_path(Path(self.sweep_dir), number).exists():
                continue
            if claim(self.sweep_dir, number, owner):
                self._mine.append(number)
                entry = self._store.load(number)
                return JobSpec(number=number, target=entry["job"], overrides=entry["overrides"],
                               output_dir=os.path.join(self.sweep_dir, str(number)), label=f"job #{number}")
        return None

    def _too_late(self) -> bool:
        """No job is started that cannot finish before the allocation ends (job_timeout_min)."""
        if self._ends_at is None or not self.job_timeout_min:
            return False
        return time.time() + self.job_timeout_min * 60 > self._ends_at

    def _release_unrecorded(self) -> None:
        from grid_sweeper.job_records import record_path

        for number in self._mine:
            if not record_path(Path(self.sweep_dir), number).exists():
                release(self.sweep_dir, number)

    # -- submitit's checkpoint: USR2 before the time limit, preemption ------------------------
    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Stop claiming, give back the claims of unfinished jobs (their processes die with this
        one), and requeue: the requeued worker, another one or a resume runs them again."""
        from submitit.helpers import DelayedSubmission

        self._stopping = True
        self._release_unrecorded()
        self._mine = []
        return DelayedSubmission(PackWorker(self.sweep_dir, self.launch, self.gpus_per_job, self.max_parallel,
                                            self.job_timeout_min, self.kill_grace_s))


def _worker_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or f"pid{os.getpid()}"


def _allocation_end() -> Optional[float]:
    """When this allocation ends (Slurm's SLURM_JOB_END_TIME, else squeue), None if unknown."""
    value = os.environ.get("SLURM_JOB_END_TIME")
    if value and value.isdigit():
        return float(value)
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    import subprocess

    try:
        out = subprocess.run(["squeue", "--noheader", "-j", job, "--format=%e"], capture_output=True, text=True,
                             timeout=20, check=False).stdout.strip()
        return time.mktime(time.strptime(out, "%Y-%m-%dT%H:%M:%S"))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
