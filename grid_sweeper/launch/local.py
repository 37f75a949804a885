"""Local process pool: every job in its own process group, disjoint GPU sets, a bounded number at
a time, timeouts, and a clean stop on SIGINT/SIGTERM. Hydra-independent.

    pool = LocalPool(max_parallel=4, gpus_per_job=1)
    results = pool.run([JobSpec(number=i, target=partial(train, i), output_dir=d) ...])

A callable job runs in a forked child (fast) or, where forking is unsafe or `start_method="spawn"`,
in a fresh interpreter; an argv job runs as a command. Either way its stdout/stderr go to files
at the file-descriptor level, and a crash, exit, signal or timeout becomes a failed `JobResult`.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import select
import shutil
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set

from ..events import COMPLETED, FAILED, RUNNING, JobEvent, JobListener, NullListener
from .child import ERROR, OK, ChildSetup, where_path
from .console import ConsoleEcho
from .forksafety import fork_unsafe_reason
from .gpus import GpuPool, GpuSet, detect_gpus, gpu_sets
from .jobs import Interrupted, JobFailed, JobResult, JobSpec, Preparable, Verdict
from .procs import (
    JobProcess,
    exit_description,
    prepare_fork,
    start_argv,
    start_forked,
    start_spawned,
)
from .signals import SignalTrap

__all__ = [
    "Interrupted",
    "JobFailed",
    "JobResult",
    "JobSpec",
    "LocalPool",
    "Verdict",
    "cpu_count",
]

log = logging.getLogger(__name__)

START_METHODS = ("fork", "spawn")
_POLL_S = 0.05  # wake-up interval where exits cannot be waited for (no pidfd)
_CONSOLE_POLL_S = 0.2
_IDLE_S = 0.05  # nothing ended for this long: the pool does the next jobs' advance work


def cpu_count() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


@dataclass
class _Running:
    index: int
    proc: JobProcess
    gpus: GpuSet
    result_path: str
    started: float
    deadline: Optional[float]
    stop_reason: str = ""
    kill_at: Optional[float] = None


class LocalPool:
    """Runs job specs as local processes; see the module docstring."""

    def __init__(
        self,
        *,
        max_parallel: Optional[int] = None,
        gpus: Optional[Sequence[Any]] = None,
        gpus_per_job: int = 0,
        timeout_s: Optional[float] = None,
        start_method: str = "fork",
        kill_grace_s: float = 5.0,
        env: Optional[Dict[str, str]] = None,
        console_output: bool = False,
        console_width: int = 200,
        listener: Optional[JobListener] = None,
    ) -> None:
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {timeout_s}")
        self.start_method = start_method
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.listener: JobListener = listener if listener is not None else NullListener()
        self.console = ConsoleEcho(width=console_width) if console_output else None
        self.gpu_sets: List[GpuSet] = []
        if gpus_per_job:
            found = detect_gpus() if gpus is None else [str(g) for g in gpus]
            self.gpu_sets = gpu_sets(found, gpus_per_job)
            unused = len(found) - len(self.gpu_sets) * gpus_per_job
            if unused:
                log.warning("%d GPU(s) left unused: %d is not a multiple of gpus_per_job=%d",
                            unused, len(found), gpus_per_job)
        self.max_parallel = self._slots(max_parallel)

    def _slots(self, max_parallel: Optional[int]) -> int:
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        if not self.gpu_sets:
            return max_parallel or cpu_count()
        if max_parallel is not None and max_parallel > len(self.gpu_sets):
            log.warning("max_parallel=%d capped to %d: that many disjoint GPU sets exist",
                        max_parallel, len(self.gpu_sets))
            return len(self.gpu_sets)
        return max_parallel or len(self.gpu_sets)

    # -- running ----------------------------------------------------------------------------

    def run(self, specs: Sequence[JobSpec], pull: Optional[Callable[[], Optional[JobSpec]]] = None
            ) -> List[JobResult]:
        """Run all specs; results in the order of `specs`. With `pull`, jobs also come from it,
        one at a time as a slot frees up, until it returns None (a packed Slurm worker claiming the
        next job of its sweep); their results follow those of `specs`.

        Raises `Interrupted` (a KeyboardInterrupt) after SIGINT/SIGTERM, once every running job
        has been stopped; its `results` hold what completed.
        """
        self._specs = list(specs)
        self._results = [JobResult(spec=s) for s in self._specs]
        self._method = self._choose_start_method(pulling=pull is not None)
        self._gpu_pool = GpuPool(self.gpu_sets)
        self._running: Dict[int, _Running] = {}
        self._tmp = tempfile.mkdtemp(prefix="grid-local-")
        self._stopping = False
        self._seen_signals = 0
        self._prepared: Set[int] = set()  # jobs whose advance work was done (or tried)
        pending: Any = deque(range(len(self._specs)))
        if pull is not None:
            pending = _Pulled(self, pending, pull)
        accepting = True
        try:
            with SignalTrap() as self._trap:
                try:
                    while True:
                        if self._trap.received:
                            self._on_signal()
                        elif accepting:
                            accepting = self._start_queued(pending)
                        if not self._running:
                            break
                        ahead = self._to_prepare(pending) if accepting else None
                        if not self._wait(limit=None if ahead is None else _IDLE_S) and ahead is not None:
                            self._prepare(ahead)  # idle: nothing ended for a while
                        self._reap()
                        self._enforce_deadlines()
                        if self.console is not None:
                            self.console.poll()
                finally:
                    if self._running:  # an error in this loop: leave no job behind
                        self._stop_all("stopped: the launcher failed", grace=self.kill_grace_s)
                        while self._running:
                            self._wait()
                            self._reap()
                            self._enforce_deadlines()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._mark_not_started(pending)
        signum = self._trap.signum
        if signum is not None:
            interrupted = Interrupted(signum, self._results)
            log.warning("%s", str(interrupted)[0].upper() + str(interrupted)[1:])
            raise interrupted
        return self._results

    def _choose_start_method(self, pulling: bool = False) -> str:
        if self.start_method == "spawn" or (not pulling and all(s.argv is not None for s in self._specs)):
            return self.start_method
        reason = fork_unsafe_reason()
        if reason is None:
            prepare_fork()
            return "fork"
        log.warning("Forking this process is unsafe (%s): jobs start with 'spawn' instead (a "
                    "fresh interpreter per job, slower to start). Set start_method=spawn to "
                    "choose it yourself.", reason)
        return "spawn"

    def _start_queued(self, pending: Deque[int]) -> bool:
        """Start queued jobs while slots and GPU sets allow; False once the listener says stop."""
        while len(self._running) < self.max_parallel:
            if self.gpu_sets and not self._gpu_pool.available():
                break
            if not pending:  # asked only when a slot is free: a pulled job is claimed then
                break
            if not self._accepting():
                log.warning("The sweep stopped accepting new jobs: %d queued job(s) not started",
                            len(pending))
                return False
            self._start(pending.popleft())
        return True

    def _to_prepare(self, pending: Any) -> Optional[int]:
        """One of the next jobs to start whose target has advance work (`Preparable`) not done
        yet, or None."""
        if self._method != "fork" or not isinstance(pending, deque) or self._trap.received:
            return None
        for position, index in enumerate(pending):
            if position >= self.max_parallel:
                break
            if index not in self._prepared and isinstance(self._specs[index].target, Preparable):
                return index
        return None

    def _prepare(self, index: int) -> None:
        """Do a job's advance work in this process, while it has nothing else to do (a forked
        job inherits it; its own start then costs less)."""
        self._prepared.add(index)
        try:
            self._specs[index].target.prepare()  # type: ignore[union-attr]
        except Exception:  # the job does that work itself when it starts
            log.debug("%s: advance work failed", self._specs[index].name, exc_info=True)

    def _accepting(self) -> bool:
        try:
            return bool(self.listener.accepting_new_jobs())
        except Exception:
            log.exception("Job listener failed in accepting_new_jobs(); going on")
            return True

    def _start(self, index: int) -> None:
        spec = self._specs[index]
        gpus = self._gpu_pool.acquire() if self.gpu_sets else ()
        env = dict(self.env)
        env.update({str(k): str(v) for k, v in spec.env.items()})
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        result_path = os.path.join(self._tmp, f"{index}.pkl")
        setup = ChildSetup(stdout=spec.stdout_path, stderr=spec.stderr_path, result=result_path,
                           env=env, cwd=spec.cwd)
        try:
            _create_logs(setup)
            if spec.argv is not None:
                proc = start_argv(spec.argv, setup)
            elif self._method == "fork":
                setup.close_fds = self._trap.fds() + [
                    r.proc.pidfd for r in self._running.values() if r.proc.pidfd is not None
                ]
                proc = start_forked(spec.target, setup)  # type: ignore[arg-type]
                if isinstance(spec.target, Preparable):
                    spec.target.forget()  # the job's process has it now
            else:
                proc = start_spawned(spec.target, setup, self._tmp)  # type: ignore[arg-type]
        except Exception as e:
            if gpus:
                self._gpu_pool.release(gpus)
            res = self._results[index]
            res.error = f"could not start: {type(e).__name__}: {e}"
            log.error("%s %s", spec.name, res.error)
            return
        now = time.monotonic()
        timeout = spec.timeout_s if spec.timeout_s is not None else self.timeout_s
        self._running[proc.pid] = _Running(index, proc, gpus, result_path, now,
                                           now + timeout if timeout else None)
        res = self._results[index]
        res.started, res.pid, res.gpus, res.start = True, proc.pid, gpus, time.time()
        res.stdout_path, res.stderr_path = setup.stdout, setup.stderr
        res.output_dir = os.path.abspath(spec.output_dir) if spec.output_dir else ""
        log.debug("%s started: pid %d%s", spec.name, proc.pid,
                  f", CUDA_VISIBLE_DEVICES={','.join(gpus)}" if gpus else "")
        if self.console is not None:
            self.console.add(proc.pid, spec.name, [setup.stdout, setup.stderr])
        self._notify("job_started", self._event(res, RUNNING))

    def _wait(self, limit: Optional[float] = None) -> bool:
        """Sleep until a job ends, a deadline passes or a signal comes, at most `limit` seconds;
        True when a job's end or a signal woke it."""
        now = time.monotonic()
        wake = [t for r in self._running.values() for t in (r.deadline, r.kill_at) if t]
        timeout = max(min(wake) - now, 0.0) if wake else None
        fds = [r.proc.pidfd for r in self._running.values() if r.proc.pidfd is not None]
        if len(fds) < len(self._running):
            timeout = _POLL_S if timeout is None else min(timeout, _POLL_S)
        if self.console is not None:
            timeout = _CONSOLE_POLL_S if timeout is None else min(timeout, _CONSOLE_POLL_S)
        if limit is not None:
            timeout = limit if timeout is None else min(timeout, limit)
        trap_fd = self._trap.fileno()
        if trap_fd is not None:
            fds.append(trap_fd)
        woke = False
        if fds:
            woke = bool(select.select(fds, [], [], timeout)[0])
        elif timeout:
            time.sleep(timeout)
        self._trap.drain()
        return woke

    def _reap(self) -> None:
        for pid in list(self._running):
            run = self._running[pid]
            returncode = run.proc.poll()
            if returncode is not None:
                del self._running[pid]
                self._finish(run, returncode)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in self._running.values():
            if run.deadline is not None and now >= run.deadline and not run.stop_reason:
                spec = self._specs[run.index]
                limit = spec.timeout_s if spec.timeout_s is not None else self.timeout_s
                run.stop_reason = f"timed out after {_duration(limit or 0.0)}"
                self._results[run.index].timed_out = True
                log.warning("%s %s: stopping it", spec.name, run.stop_reason)
                self._terminate(run, self.kill_grace_s)
            if run.kill_at is not None and now >= run.kill_at:
                run.kill_at = None
                run.proc.signal_group(signal.SIGKILL)

    def _terminate(self, run: _Running, grace: float) -> None:
        run.proc.signal_group(signal.SIGTERM)
        run.kill_at = time.monotonic() + grace
        run.deadline = None

    def _stop_all(self, reason: str, grace: float) -> None:
        for run in self._running.values():
            if not run.stop_reason:
                run.stop_reason = reason
            self._terminate(run, grace)

    def _on_signal(self) -> None:
        """First stop signal: TERM every job, KILL after the grace; another one: KILL now."""
        name = signal.Signals(self._trap.received[0]).name
        if not self._stopping:
            self._stopping = True
            log.warning("%s received: stopping %d running job(s) (SIGTERM, SIGKILL after %gs); "
                        "no new job starts", name, len(self._running), self.kill_grace_s)
            self._stop_all(f"stopped: the sweep was interrupted ({name})", self.kill_grace_s)
            self._seen_signals = len(self._trap.received)
        elif len(self._trap.received) > self._seen_signals:
            self._seen_signals = len(self._trap.received)
            log.warning("Signal received again: killing the running jobs now")
            for run in self._running.values():
                run.proc.signal_group(signal.SIGKILL)

    # -- results ----------------------------------------------------------------------------

    def _finish(self, run: _Running, returncode: int) -> None:
        res = self._results[run.index]
        spec = res.spec
        res.end = time.time()
        res.returncode = returncode
        if run.gpus:
            self._gpu_pool.release(run.gpus)
        self._read_where(res, run.result_path)
        self._judge(res, run, returncode)
        if self.console is not None:
            self.console.finish(run.proc.pid)
        if (self._stopping or self._trap.received) and res.status == FAILED:
            # stopped by the sweep's interruption: not a failure of the job, and no record, so the
            # sweep counts it as not run and a resume runs it again
            log.warning("%s %s (stderr: %s)", spec.name, res.error, res.stderr_path)
            return
        if res.status == FAILED:
            log.warning("%s failed: %s (stderr: %s)", spec.name, res.error, res.stderr_path)
        self._notify("job_finished", self._event(res, res.status))

    def _judge(self, res: JobResult, run: _Running, returncode: int) -> None:
        outcome = self._read_outcome(run.result_path) if res.spec.target is not None else None
        if outcome is not None and outcome[0] == OK:
            res.value = outcome[1]
            judge = res.spec.judge or (lambda v: Verdict(True, v))
            try:
                verdict = judge(res.value)
            except Exception as e:
                verdict = Verdict(False, None, f"could not read the job's result: {e}")
            res.status = COMPLETED if verdict.ok else FAILED
            res.event_value, res.error = verdict.value, verdict.error
        elif run.stop_reason:
            res.status, res.error = FAILED, run.stop_reason
            if outcome is not None:
                res.exception, res.traceback = outcome[1], outcome[3]
        elif outcome is not None:
            res.status, res.exception, res.error, res.traceback = FAILED, *outcome[1:4]
        elif res.spec.argv is not None and returncode == 0:
            res.status, res.value, res.event_value = COMPLETED, 0, 0
        else:
            res.status, res.error = FAILED, exit_description(returncode)
            if returncode == 0:
                res.error += " before it returned a result"

    @staticmethod
    def _read_where(res: JobResult, result_path: str) -> None:
        """Log paths and output dir of a job that moved its logs (`child.relocate_output`)."""
        try:
            with open(where_path(result_path), encoding="utf-8") as f:
                where = json.load(f)
        except (OSError, ValueError):
            return
        res.output_dir = where.get("output_dir", res.output_dir)
        res.stdout_path = where.get("stdout", res.stdout_path)
        res.stderr_path = where.get("stderr", res.stderr_path)

    @staticmethod
    def _read_outcome(path: str) -> Optional[tuple]:
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception as e:
            return (ERROR, None, f"could not read the job's result: {type(e).__name__}: {e}", "")

    def _mark_not_started(self, pending: Deque[int]) -> None:
        reason = "not started: the sweep stopped before this job could start"
        if self._trap.signum is not None:
            reason = (f"not started: the sweep was interrupted "
                      f"({signal.Signals(self._trap.signum).name})")
        for index in pending:
            res = self._results[index]
            res.status, res.error = FAILED, reason

    def _event(self, res: JobResult, status: str) -> JobEvent:
        return JobEvent(
            number=res.spec.number,
            overrides=list(res.spec.overrides),
            status=status,
            job_id=str(res.pid or ""),
            output_dir=res.output_dir,
            start=res.start,
            end=res.end if status != RUNNING else None,
            return_value=res.event_value if status == COMPLETED else None,
            error=res.error,
            logs=res.logs,
        )

    def _notify(self, method: str, event: JobEvent) -> None:
        try:
            getattr(self.listener, method)(event)
        except Exception:
            log.exception("Job listener failed in %s(); going on", method)


class _Pulled:
    """The pool's queue when jobs are pulled: the given ones first, then one from `pull` whenever
    the pool asks, at a free slot, whether a job is waiting (it is then held until started). The
    pool ends once nothing runs and `pull` has nothing."""

    def __init__(self, pool: LocalPool, given: Deque[int], pull: Callable[[], Optional[JobSpec]]) -> None:
        self.pool, self.given, self.pull = pool, given, pull

    def _fill(self) -> None:
        """Asked again at each free slot: a job given back by another worker may come later."""
        if self.given:
            return
        spec = self.pull()
        if spec is None:
            return
        self.pool._specs.append(spec)
        self.pool._results.append(JobResult(spec=spec))
        self.given.append(len(self.pool._specs) - 1)

    def __bool__(self) -> bool:
        self._fill()
        return bool(self.given)

    def __len__(self) -> int:
        return len(self.given)

    def popleft(self) -> int:
        self._fill()
        return self.given.popleft()

    def __iter__(self) -> Any:
        return iter(self.given)


def _create_logs(setup: ChildSetup) -> None:
    """Create the log files up front, so that they can be followed from the first line."""
    for path in (setup.stdout, setup.stderr):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab"):
            pass


def _duration(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
