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

    def write(self, number: int, job: Any, overrides: Sequence[str], judge: Any = None) -> None:
        """Pickle one job (cloudpickle, as submitit does) where a worker can load it; `judge`
        tells whether what it returned is a success (`jobs.JobSpec.judge`)."""
        import cloudpickle

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{int(number)}.pkl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            cloudpickle.dump({"job": job, "overrides": list(overrides), "judge": judge}, out)
        os.replace(tmp, path)

    def write_order(self, numbers: Sequence[int]) -> None:
        (self.root / "order.json").write_text(json.dumps([int(n) for n in numbers]), encoding="utf-8")

    def order(self) -> List[int]:
        return [int(n) for n in json.loads((self.root / "order.json").read_text(encoding="utf-8"))]

    @property
    def stop_file(self) -> Path:
        """Once it exists, the workers start no new job (the sweep's failure-rate guard)."""
        return self.root / "stop"

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


def release_claims_of(sweep_dir: str, worker: str) -> List[int]:
    """Give back the claims `worker` holds on jobs without a record."""
    from grid_sweeper.job_records import record_path

    released = []
    for number, owner in claims(sweep_dir).items():
        if owner.get("worker") == worker and not record_path(Path(sweep_dir), number).exists():
            release(sweep_dir, number)
            released.append(number)
    return released


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

    #: a job killed by one of these may have been killed with its worker (scancel signals every
    #: process of the allocation, the job's possibly first): recorded only once the worker ends well
    _MAYBE_WORKERS = ("killed by signal SIGTERM", "killed by signal SIGKILL", "killed by signal SIGINT",
                      "killed by signal SIGHUP", "killed by signal SIGUSR2", "killed by signal SIGUSR1")

    def __init__(self, worker: PackWorker) -> None:
        self.worker = worker
        self.deferred: List[JobEvent] = []

    def job_started(self, event: JobEvent) -> None:
        return None

    def job_finished(self, event: JobEvent) -> None:
        if self.worker._stopping:  # stopped with its worker: given back, not failed
            return
        if event.status == "failed" and event.error.startswith(self._MAYBE_WORKERS):
            self.deferred.append(event)
            return
        self._record(event)

    def flush(self) -> None:
        """The worker ended well: the signals were the jobs' own."""
        for event in self.deferred:
            self._record(event)
        self.deferred = []

    def _record(self, event: JobEvent) -> None:
        from grid_sweeper.job_records import claim as claim_record
        from grid_sweeper.records import record_of

        claim_record(Path(self.worker.sweep_dir), record_of(event), own=False)

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
        release_claims_of(self.sweep_dir, _worker_id())  # this worker's, before a requeue
        records = _WorkerRecords(self)
        pool = LocalPool(max_parallel=self.max_parallel, gpus_per_job=self.gpus_per_job,
                         timeout_s=self.job_timeout_min * 60 if self.job_timeout_min else None,
                         kill_grace_s=self.kill_grace_s, listener=records)
        started = time.time()
        try:
            results = pool.run([], pull=self._next_job)
        except Interrupted as stop:  # scancel, a node going down: the stopped jobs are not lost
            self._stopping = True
            raise SystemExit(128 + int(getattr(stop, "signum", signal.SIGTERM))) from None
        finally:  # whatever ended the pool (its jobs are stopped by now): give back what is unfinished
            if not self._stopping:
                records.flush()
            self._release_unrecorded()
        ran = [r.spec.number for r in results if r.started]
        print(f"pack worker {_worker_id()}: ran {len(ran)} job(s) in {time.time() - started:.1f} s", flush=True)
        return {"worker": _worker_id(), "jobs": ran}

    def _next_job(self) -> Optional[JobSpec]:
        from grid_sweeper.job_records import record_path

        if self._stopping or self._too_late() or self._store.stop_file.exists():
            return None
        owner = {"worker": _worker_id(), "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        claimed = claims_dir(Path(self.sweep_dir))
        # in order from where this worker was; once at the end, every job again: one that a
        # stopped worker gave back is taken by any worker still running
        total = len(self._order)
        first_pass = self._cursor < total
        for position in range(self._cursor if first_pass else 0, total):
            number = self._order[position]
            if first_pass:
                self._cursor = position + 1
            if (claimed / str(number)).exists() or record_path(Path(self.sweep_dir), number).exists():
                continue
            if claim(self.sweep_dir, number, owner):
                self._mine.append(number)
                entry = self._store.load(number)
                return JobSpec(number=number, target=entry["job"], overrides=entry["overrides"],
                               output_dir=os.path.join(self.sweep_dir, str(number)), label=f"job #{number}",
                               judge=entry.get("judge"))
        self._cursor = total
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

        self._stopping = True  # the claims are given back once the pool has stopped the jobs
        return DelayedSubmission(PackWorker(self.sweep_dir, self.launch, self.gpus_per_job, self.max_parallel,
                                            self.job_timeout_min, self.kill_grace_s))


def _worker_id() -> str:
    from .job_env import slurm_job_id

    return slurm_job_id() or f"pid{os.getpid()}"


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


# -- the launcher's side ------------------------------------------------------------------------

WORKERS_FILE = ".grid_sweep/pack/workers.jsonl"


def slots_per_worker(options: Any) -> int:
    """Jobs one allocation runs at once: `jobs_per_worker`, else its GPUs / `gpus_per_job`, else 1."""
    if options.jobs_per_worker:
        return int(options.jobs_per_worker)
    gpus = options.gpus_per_node or options.gpus_per_task
    if options.gpus_per_job and gpus:
        return max(1, int(gpus) // int(options.gpus_per_job))
    return 1


def run_packed(options: Any, sweep_dir: str, jobs: Sequence[Any], listener: Any, client: Any = None,
               judge: Any = None) -> List[str]:
    """Run `jobs` ((number, callable, overrides)) in packed allocations; the listener hears each
    job start (its claim) and end (its record) as the workers report them in the sweep dir. With
    `options.detach`, submit the workers and return their array ids at once."""
    import dataclasses
    import math
    import uuid

    from .slurm import SlurmRunner, SlurmTask
    from .slurm_state import SlurmClient

    sweep_dir = str(Path(sweep_dir).absolute())
    client = client or SlurmClient()
    launch = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    store = PackStore(sweep_dir, launch)
    for number, job, overrides in jobs:
        store.write(number, job, overrides, judge)
    numbers = [int(number) for number, _, _ in jobs]
    store.write_order(numbers)
    live = live_workers(sweep_dir, client)
    if live is None:
        from .slurm import ControllerUnreachable

        raise ControllerUnreachable("cannot ask Slurm's controller whether this sweep's packed workers still "
                                    "run; nothing was submitted, so that no job runs twice: try again later")
    stale = release_stale_claims(sweep_dir, live)
    if stale:
        log.info("%d job(s) claimed by packed workers no longer on Slurm: given back", len(stale))
    slots = slots_per_worker(options)
    count = int(options.workers or min(math.ceil(len(numbers) / slots), int(options.array_parallelism)))
    count = max(1, min(count, len(numbers)))
    worker = PackWorker(sweep_dir, launch, int(options.gpus_per_job), slots, options.job_timeout_min)
    tasks = [SlurmTask(fn=worker, number=i, label=f"packed worker {i}") for i in range(count)]
    log.info("Packed: %d job(s) in %d allocation(s), %d at a time in each%s", len(numbers), count, slots,
             f", {options.gpus_per_job} GPU(s) per job" if options.gpus_per_job else "")
    watcher = _Watcher(sweep_dir, {int(n): list(o) for n, _, o in jobs}, listener, stop_file=store.stop_file)
    runner = SlurmRunner(dataclasses.replace(options, pack=False), listener=_WorkerEvents(sweep_dir), client=client,
                         on_submitted=lambda array_id, submitted: _note_workers(sweep_dir, submitted),
                         keep_on_hangup=True)
    if options.detach:
        runner.run(tasks, detach=True)
        return [a.array_id for a in runner.arrays]
    watcher.start()
    try:
        runner.run(tasks)
    finally:
        watcher.stop()
    return [a.array_id for a in runner.arrays]


def follow_workers(sweep_dir: str, overrides: Dict[int, List[str]], listener: Any, poll_s: float = 2.0) -> None:
    """`gridsweep wait` on a packed sweep: hear its jobs from the dir until no worker is on Slurm."""
    from .slurm_state import SlurmClient

    client = SlurmClient()
    watcher = _Watcher(str(sweep_dir), overrides, listener)
    watcher.start()
    try:
        while live_workers(str(sweep_dir), client) != []:  # None (the controller silent): keep waiting
            time.sleep(poll_s)
    finally:
        watcher.stop()


def _note_workers(sweep_dir: str, submitted: Sequence[Any]) -> None:
    path = Path(sweep_dir) / WORKERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"workers": [job_id for _, job_id, _ in submitted], "time": time.time()}) + "\n")
        out.flush()
        os.fsync(out.fileno())


def live_workers(sweep_dir: str, client: Any) -> Optional[List[str]]:
    """Packed workers of launches of this sweep that are still on Slurm; None when Slurm's
    controller cannot be asked (then nobody may take their jobs)."""
    from .slurm_state import split_ids

    path = Path(sweep_dir) / WORKERS_FILE
    if not path.exists():
        return []
    ids: List[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ids += [str(j) for j in json.loads(line)["workers"]]
    if not ids:
        return []
    states = client.queue_states({split_ids(j)[0] for j in ids})
    if states is None:
        return None
    return [j for j in ids if states.get(j) is not None and states[j].active]


class _WorkerEvents:
    """The runner's listener for the workers themselves: their ends are logged and the claims an
    ended worker still holds without a record are given back (it died: a node failure, SIGKILL,
    out of memory); the jobs' own events are the watcher's."""

    def __init__(self, sweep_dir: str) -> None:
        self.sweep_dir = sweep_dir

    def job_started(self, event: JobEvent) -> None:
        return None

    def job_finished(self, event: JobEvent) -> None:
        if event.status != "completed":
            log.warning("packed worker %s ended: %s", event.job_id, event.error)
        given_back = release_claims_of(self.sweep_dir, event.job_id)
        if given_back:
            log.warning("packed worker %s left %d job(s) unfinished: given back (a running worker or a "
                        "resume runs them)", event.job_id, len(given_back))

    def accepting_new_jobs(self) -> bool:
        return True


class _Watcher:
    """Tells the sweep's listener of each job's start (its claim) and end (its record), from the dir."""

    def __init__(self, sweep_dir: str, overrides: Dict[int, List[str]], listener: Any, interval_s: float = 0.5,
                 stop_file: Optional[Path] = None) -> None:
        import threading

        self.sweep_dir, self.overrides, self.listener, self.interval_s = sweep_dir, overrides, listener, interval_s
        self.stop_file = stop_file  # written once the listener accepts no new job
        self.started: set = set()
        self.finished: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="grid-pack-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.scan()  # whatever ended since the last look
        except Exception:  # noqa: BLE001 - the sweep's end repairs results.jsonl from the records
            log.exception("the last look at the packed jobs failed")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a bad look must not stop the watching
                log.exception("watching the packed jobs failed; going on")

    def scan(self) -> None:
        """New claims and records only: names are listed, only those not seen are read."""
        from grid_sweeper.job_records import read, records_dir
        from grid_sweeper.records import event_of_record

        for number in _numbers_in(claims_dir(Path(self.sweep_dir))):
            if number in self.overrides and number not in self.started and number not in self.finished:
                owner = _read_json(claims_dir(Path(self.sweep_dir)) / str(number))
                self.started.add(number)
                self.listener.job_started(JobEvent(number, self.overrides[number], job_id=str(owner.get("worker", "")),
                                                   start=owner.get("time")))
        folder = records_dir(Path(self.sweep_dir))
        for number in _numbers_in(folder, ".json"):
            if number in self.overrides and number not in self.finished:
                record = read(folder / f"{number}.json")
                if record is not None:
                    self.listener.job_finished(event_of_record(record))
                    self.finished.add(number)
        if self.stop_file is not None and not self.stop_file.exists() and not self.listener.accepting_new_jobs():
            self.stop_file.write_text("the sweep's failure-rate guard\n", encoding="utf-8")
            log.warning("The sweep stopped accepting new jobs: the packed workers start no new job")


def _numbers_in(folder: Path, suffix: str = "") -> List[int]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    cut = len(suffix)
    return [int(name[: len(name) - cut]) for name in names
            if name.endswith(suffix) and name[: len(name) - cut].isdigit()]


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
