"""SLURM backend on submitit: runs callables as job arrays and reports each job as it ends.

Each task is pickled as a submitit `DelayedSubmission` and run on a node by submitit's runner
(`python -m grid_sweeper.launch.slurm_submit`, i.e. `submitit.core._submit`), so submitit's
checkpoint/requeue machinery applies (`max_num_timeout`, `Checkpointable`). Tasks go out as
`sbatch --array` chunks of at most the cluster's MaxArraySize, throttled so that no more than
`array_parallelism` run at once. Results are read from the result files as they appear; jobs
that end without one are found from the controller's states (squeue/scontrol, no accounting
needed) and become `SlurmJobError`s. Ctrl-C cancels what was submitted when
`cancel_on_interrupt`; SIGTERM and SIGHUP (an ssh disconnect) do too, unless the jobs record
themselves (`keep_on_hangup`): then they go on and `gridsweep wait` or a resume collects them.

Every `sbatch` is told to `on_submitted` the moment it returns (the sweep's ledger), jobs already
on Slurm from an earlier run of the sweep are adopted (`run(..., adopted=...)`: watched, never
submitted again), and `detach` submits everything and returns without waiting.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from submitit.core.utils import DelayedSubmission, JobPaths

from ..events import COMPLETED, FAILED, JobEvent, JobListener, NullListener
from ..interrupts import sigterm_as_interrupt
from .slurm_logs import array_log_patterns, log_paths, start_time
from .slurm_options import SlurmOptions
from .slurm_results import (
    SlurmJobError,
    SlurmResult,
    SlurmTask,
    ended_without_result,
    not_submitted,
    read_outcome,
    refresh_folder,
    result_files,
    task_error,
)
from .slurm_script import first_folder_without_ids, sbatch_script
from .slurm_state import FINAL_STATES, VANISHED, JobState, SlurmClient, split_ids

__all__ = [
    "ControllerUnreachable", "SlurmJobError", "SlurmOptions", "SlurmResult", "SlurmRunner", "SlurmTask", "command_task",
    "default_event",
]

log = logging.getLogger(__name__)

#: pending jobs whose result file is looked for at each tick (see _jobs_to_look_at)
_PENDING_LOOKS = 256

Describe = Callable[[SlurmResult], JobEvent]
Finalize = Callable[[SlurmResult], None]
#: (array id, [(job number, Slurm job id, overrides)]) of each sbatch, told as it returns
OnSubmitted = Callable[[str, List[Tuple[int, str, List[str]]]], None]

#: what became of a job submitted earlier (`SlurmRunner.classify`)
ON_SLURM, HAS_RESULT, GONE = "on_slurm", "has_result", "gone"


class ControllerUnreachable(RuntimeError):
    """Slurm's controller could not be asked about jobs submitted earlier."""


@contextlib.contextmanager
def _stop_signals_held() -> Any:
    """SIGINT, SIGTERM and SIGHUP wait until the block ends (main thread only), then act."""
    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def command_task(argv: Sequence[str], number: int = 0, cwd: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> SlurmTask:
    """A task that runs a command on the node (its output goes to the job's log)."""
    from submitit.helpers import CommandFunction

    fn = CommandFunction([str(a) for a in argv], verbose=True, cwd=cwd, env=env)
    return SlurmTask(fn=fn, number=number, overrides=[str(a) for a in argv],
                     label=" ".join(str(a) for a in argv))


def default_event(result: SlurmResult) -> JobEvent:
    """The JobEvent of a finished task, from the engine's point of view."""
    return JobEvent(
        number=result.task.number, overrides=list(result.task.overrides),
        status=COMPLETED if result.ok else FAILED, job_id=result.job_id, start=result.start,
        end=result.end, return_value=result.value if result.ok else result.error,
        error=result.one_line_error, logs=dict(result.logs),
    )


@dataclass
class _Job:
    """Book-keeping of one submitted array element."""

    index: int
    job_id: str
    array_id: str
    logs: Dict[str, str]
    folder: str
    start: Optional[float] = None
    started_sent: bool = False
    ended_since: Optional[float] = None
    unknown_since: Optional[float] = None
    last_state: Optional[JobState] = None


@dataclass
class _Array:
    array_id: str
    throttle: int
    jobs: List[str] = field(default_factory=list)


class SlurmRunner:
    """Runs tasks on SLURM and returns one `SlurmResult` per task, in task order."""

    def __init__(self, options: SlurmOptions, listener: Optional[JobListener] = None,
                 client: Optional[SlurmClient] = None, describe: Optional[Describe] = None,
                 finalize: Optional[Finalize] = None, on_submitted: Optional[OnSubmitted] = None,
                 keep_on_hangup: bool = False) -> None:
        self.options = options
        self.on_submitted = on_submitted
        self.keep_on_hangup = keep_on_hangup
        self.listener: JobListener = listener if listener is not None else NullListener()
        self.client = client if client is not None else SlurmClient()
        self.describe = describe or default_event
        self.finalize = finalize
        self.arrays: List[_Array] = []
        self._tasks: List[SlurmTask] = []
        self._results: List[Optional[SlurmResult]] = []
        self._live: Dict[str, _Job] = {}
        self._queue: List[int] = []
        self._next_state_poll = 0.0
        self._controller_down = False
        self._rotation = 0

    # -- public -----------------------------------------------------------------------------

    def run(self, tasks: Sequence[SlurmTask], adopted: Optional[Dict[int, Tuple[str, str]]] = None,
            detach: bool = False) -> List[SlurmResult]:
        """Run the tasks; results in task order. `adopted`: task index -> (Slurm job id, its
        submitit folder) of a job an earlier run submitted, watched instead of submitted.
        `detach`: submit every task now and return [] without waiting."""
        self._tasks = list(tasks)
        self._results = [None] * len(self._tasks)
        self._adopt(adopted or {})
        watched = {j.index for j in self._live.values()}
        self._queue = [i for i in range(len(self._tasks)) if self._results[i] is None and i not in watched]
        if not self._tasks:
            return []
        chunk = self.client.max_array_size()
        tick = min(1.0, float(self.options.poll_interval_s))
        with sigterm_as_interrupt():  # a killed sweep cancels its jobs (or leaves them recording)
            try:
                if detach:
                    self._submit_all(chunk)
                    return []
                while self._queue or self._live:
                    self._submit_more(chunk)
                    self._poll()
                    if self._live:
                        time.sleep(tick)
            except KeyboardInterrupt as stop:
                self._interrupted(stop)
                raise
            except BaseException:
                self._left_running()
                raise
        return [r for r in self._results if r is not None]

    # -- jobs submitted earlier -------------------------------------------------------------

    def classify(self, jobs: Dict[str, str]) -> Dict[str, str]:
        """What became of jobs an earlier run submitted (Slurm job id -> its submitit folder):
        ON_SLURM (pending, running, requeued), HAS_RESULT (its result file is there) or GONE
        (ended without a result, or forgotten by the controller). None of them is waited for."""
        found: Dict[str, str] = {}
        for job_id, folder in jobs.items():
            result = result_files(folder, job_id, 1)[0]
            refresh_folder(result.parent)
            if result.exists():
                found[job_id] = HAS_RESULT
        asked = {split_ids(j)[0] for j in jobs if j not in found}
        states = self.client.queue_states(asked) if asked else {}
        if states is None:  # "could not ask" is not "gone": rerunning them could run them twice
            raise ControllerUnreachable(
                "cannot ask Slurm's controller (squeue failed) whether this sweep's jobs still run; "
                "nothing was submitted, so that no job runs twice: try again when it answers")
        for job_id in jobs:
            if job_id not in found:  # squeue --states=all lists ended jobs for MinJobAge: absent is gone
                state = states.get(job_id)
                found[job_id] = ON_SLURM if state is not None and state.active else GONE
        return found

    def _adopt(self, adopted: Dict[int, Tuple[str, str]]) -> None:
        for index, (job_id, folder) in adopted.items():
            logs = log_paths(folder, job_id, stderr_to_stdout=self.options.stderr_to_stdout)
            self._live[job_id] = _Job(index, job_id, split_ids(job_id)[0], logs, folder)
        if adopted:
            ids = sorted(job_id for job_id, _ in adopted.values())
            log.info("Adopted %d job(s) this sweep submitted earlier, still on Slurm or ended with a "
                     "result: %s", len(ids), " ".join(ids[:20]) + (" ..." if len(ids) > 20 else ""))

    # -- submission -------------------------------------------------------------------------

    def _submit_all(self, chunk: int) -> None:
        """Detached: every task submitted now, each array throttled to `array_parallelism`."""
        limit = int(self.options.array_parallelism)
        while self._queue:
            indexes = self._queue[:chunk]
            self._submit_array(indexes, min(len(indexes), limit))
            del self._queue[:len(indexes)]

    def _submit_more(self, chunk: int) -> None:
        limit = int(self.options.array_parallelism)
        while self._queue and len(self._live) < limit:
            if not self._accepting():
                self._skip_queue("the sweep stopped accepting new jobs")
                return
            indexes = self._queue[:chunk]
            throttle = min(len(indexes), limit - len(self._live))
            try:
                self._submit_array(indexes, throttle)
            except Exception as exc:  # noqa: BLE001 - sbatch refused, or a task did not pickle
                if not self.arrays:
                    raise  # nothing runs yet: e.g. a configuration error stops the launch
                log.error("Submission of %d job(s) failed: %s", len(indexes), exc)
                for index in indexes:
                    self._store(index, "", "SUBMIT_FAILED", error=SlurmJobError(
                        f"sbatch failed: {exc}", "", "SUBMIT_FAILED"))
            del self._queue[:len(indexes)]

    def _submit_array(self, indexes: List[int], throttle: int) -> None:
        opts = self.options
        base = first_folder_without_ids(opts.folder)
        base.mkdir(parents=True, exist_ok=True)
        pickles: List[Path] = []
        script = base / f".submission_{uuid.uuid4().hex}.sh"
        try:
            for index in indexes:
                delayed = DelayedSubmission(self._tasks[index].fn)
                delayed.set_timeout(int(opts.timeout_min), int(opts.max_num_timeout))
                path = base / f".{uuid.uuid4().hex}.pkl"
                delayed.dump(path)
                pickles.append(path)
            script.write_text(sbatch_script(opts, len(indexes), throttle), encoding="utf-8")
            with _stop_signals_held():  # no array is submitted without its ledger line and watcher
                array_id = self.client.sbatch(str(script))
                array = _Array(array_id, throttle, [f"{array_id}_{k}" for k in range(len(indexes))])
                self.arrays.append(array)
                self._tell_submitted(array, indexes)
        except BaseException:
            for path in [*pickles, script]:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        for job_id, index in zip(array.jobs, indexes):
            logs = log_paths(opts.folder, job_id, stderr_to_stdout=opts.stderr_to_stdout)
            self._live[job_id] = _Job(index, job_id, array_id, logs, opts.folder)
        # the jobs wait (up to 60 s) for their pickle, named after their id
        for job_id, path in zip(array.jobs, pickles):
            target = JobPaths(opts.folder, job_id=job_id).submitted_pickle
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        script.rename(base / f"{array_id}_submission.sh")
        patterns = array_log_patterns(opts.folder)
        log.info("Slurm array %s: %d job(s), at most %d at a time; logs %s", array_id,
                 len(indexes), throttle, patterns["stdout"].replace("%t", "0"))
        for job_id in array.jobs:
            job = self._live[job_id]
            task = self._tasks[job.index]
            log.info("\t#%d %s : %s -> %s", task.number, job_id,
                     task.label or " ".join(task.overrides), job.logs["stdout"])

    def _tell_submitted(self, array: _Array, indexes: List[int]) -> None:
        if self.on_submitted is None:
            return
        jobs = [(self._tasks[i].number, job_id, list(self._tasks[i].overrides))
                for job_id, i in zip(array.jobs, indexes)]
        try:
            self.on_submitted(array.array_id, jobs)
        except Exception:  # noqa: BLE001 - the jobs run; only a later resume would not know them
            log.exception("could not write the ledger entry of Slurm array %s", array.array_id)

    def _accepting(self) -> bool:
        try:
            return bool(self.listener.accepting_new_jobs())
        except Exception:  # noqa: BLE001 - a broken listener must not orphan jobs
            log.exception("listener.accepting_new_jobs() failed; going on")
            return True

    def _skip_queue(self, reason: str) -> None:
        log.warning("%d job(s) not submitted: %s", len(self._queue), reason)
        for index in self._queue:
            self._results[index] = SlurmResult(index, self._tasks[index], state="NOT_SUBMITTED",
                                               error=not_submitted(reason))
        self._queue.clear()

    # -- watching ---------------------------------------------------------------------------

    def _poll(self) -> None:
        for job in self._jobs_to_look_at():
            if self._results_ready(job):
                self._finish_from_files(job)
        now = time.monotonic()
        if not self._live or now < self._next_state_poll:
            return
        self._next_state_poll = now + float(self.options.poll_interval_s)
        states = self.client.queue_states({j.array_id for j in self._live.values()})
        if states is None:
            if not self._controller_down:
                log.warning("Cannot reach the Slurm controller (squeue failed); still watching "
                            "result files and retrying")
            self._controller_down = True
            return
        if self._controller_down:
            log.info("Slurm controller reachable again")
            self._controller_down = False
        for job in list(self._live.values()):
            self._observe(job, states.get(job.job_id), now)
        self._drop_pending_if_refused()
        self._raise_throttle()

    def _jobs_to_look_at(self) -> List[_Job]:
        """Jobs whose result file is looked for now: all but those the queue said are pending,
        of which a rotating share (a short job may start and end between two looks at the
        queue; thousands of pending jobs must not cost thousands of stats a second)."""
        jobs = list(self._live.values())
        pending = [j for j in jobs if j.last_state is not None and j.last_state.state == "PENDING"]
        if len(pending) <= _PENDING_LOOKS:
            return jobs
        others = [j for j in jobs if j.last_state is None or j.last_state.state != "PENDING"]
        self._rotation = self._rotation % len(pending)
        share = (pending + pending)[self._rotation:self._rotation + _PENDING_LOOKS]
        self._rotation += _PENDING_LOOKS
        return others + share

    def _observe(self, job: _Job, state: Optional[JobState], now: float) -> None:
        if state is None:
            self._observe_unknown(job, now)
            return
        job.unknown_since = None
        if state.restarts > (job.last_state.restarts if job.last_state is not None else 0):
            log.warning("#%d %s requeued by Slurm (%s): it runs again, and is recorded once",
                        self._tasks[job.index].number, job.job_id, state.describe())
        job.last_state = state
        if state.started and not job.started_sent:
            self._send_started(job)
        if state.active:
            job.ended_since = None
            return
        if job.ended_since is None:
            job.ended_since = now
        refresh_folder(result_files(job.folder, job.job_id, 1)[0].parent)
        if self._results_ready(job, ended=True):
            self._finish_from_files(job)
            return
        grace = 0.0 if state.state in FINAL_STATES else float(self.options.result_grace_s)
        if now - job.ended_since >= grace:
            self._finish_failed(job, state.state, state.describe())

    def _observe_unknown(self, job: _Job, now: float) -> None:
        if job.unknown_since is None:
            job.unknown_since = now
            return
        if now - job.unknown_since < float(self.options.vanished_grace_s):
            return
        state = self.client.job_state(job.job_id)
        if state is not None:
            self._observe(job, state, now)
            return
        refresh_folder(result_files(job.folder, job.job_id, 1)[0].parent)
        if self._results_ready(job, ended=True):
            self._finish_from_files(job)
            return
        state = self.client.accounting_state(job.job_id)
        if state is not None and not state.active:
            self._finish_failed(job, state.state, state.describe(), state)
            return
        self._finish_failed(job, VANISHED, "VANISHED (unknown to squeue and scontrol, "
                            f"no result file after {self.options.vanished_grace_s:.0f} s)")

    def _drop_pending_if_refused(self) -> None:
        """Once the listener refuses new jobs (failure-rate guard), jobs still waiting in the
        queue are cancelled and reported as not started."""
        pending = [j for j in self._live.values() if not j.started_sent
                   and j.last_state is not None and j.last_state.state == "PENDING"]
        if not pending or self._accepting():
            return
        self.client.cancel([j.job_id for j in pending])
        log.warning("The sweep stopped accepting new jobs: cancelled %d pending Slurm job(s)",
                    len(pending))
        for job in pending:
            del self._live[job.job_id]
            self._results[job.index] = SlurmResult(
                job.index, self._tasks[job.index], job_id=job.job_id, state="NOT_STARTED",
                error=not_submitted("not started: the sweep stopped accepting new jobs"),
                logs=dict(job.logs))

    def _results_ready(self, job: _Job, ended: bool = False) -> bool:
        files = result_files(job.folder, job.job_id, self.options.num_tasks)
        return files[0].exists() and (ended or all(f.exists() for f in files[1:]))

    def _raise_throttle(self) -> None:
        """Lets the newest array use the parallelism that older, finishing arrays give back."""
        live_arrays = [a for a in self.arrays if any(j in self._live for j in a.jobs)]
        if not live_arrays:
            return
        newest = live_arrays[-1]
        others = sum(1 for j in self._live.values() if j.array_id != newest.array_id)
        mine = sum(1 for j in newest.jobs if j in self._live)
        wanted = min(int(self.options.array_parallelism) - others, mine)
        if wanted > newest.throttle and self.client.set_array_throttle(newest.array_id, wanted):
            log.debug("Slurm array %s may now run %d at a time", newest.array_id, wanted)
            newest.throttle = wanted

    # -- ending -----------------------------------------------------------------------------

    def _finish_from_files(self, job: _Job) -> None:
        files = result_files(job.folder, job.job_id, self.options.num_tasks)
        outcomes = [read_outcome(f) for f in files if f.exists()]
        errors = [value for outcome, value in outcomes if outcome != "success"]
        last = job.last_state
        if errors:
            error = task_error(job.job_id, str(errors[0]), job.logs)
            self._store(job.index, job.job_id, error.state, error=error, job=job)
        else:
            state = last.state if last is not None and not last.active else "COMPLETED"
            self._store(job.index, job.job_id, state, value=outcomes[0][1], ok=True, job=job)

    def _finish_failed(self, job: _Job, state: str, state_text: str,
                       known: Optional[JobState] = None) -> None:
        """A job that ended without a result; its duration is the time it ran, as far as Slurm says."""
        known = known or job.last_state
        if known is not None and known.start_time is not None and known.state != "PENDING":
            job.start = job.start or known.start_time
        end = known.end_time if known is not None and not known.active else None
        self._store(job.index, job.job_id, state,
                    error=ended_without_result(job.job_id, state_text, state, job.logs), job=job,
                    end=end)

    def _store(self, index: int, job_id: str, state: str, value: Any = None, ok: bool = False,
               error: Optional[BaseException] = None, job: Optional[_Job] = None,
               end: Optional[float] = None) -> None:
        if job is not None and not job.started_sent:
            self._send_started(job)  # listeners see a start before the end, and its time
        result = SlurmResult(index, self._tasks[index], job_id=job_id, state=state, ok=ok,
                             value=value, error=error, logs=dict(job.logs) if job else {},
                             start=job.start if job else None,
                             end=end if end is not None and job and job.start and end >= job.start
                             else time.time())
        if job is not None:
            self._live.pop(job.job_id, None)
        if self.finalize is not None:
            try:
                self.finalize(result)
            except Exception:  # noqa: BLE001
                log.exception("finalizing the result of Slurm job %s failed", job_id)
        self._results[index] = result
        if not result.ok:
            where = result.logs.get("stderr") or result.logs.get("stdout")
            log.error("#%d %s failed: %s%s", result.task.number, job_id or "-",
                      result.one_line_error, f" (log {where})" if where else "")
        if job is not None:
            try:
                event = self.describe(result)
            except Exception:  # noqa: BLE001
                log.exception("describing Slurm job %s failed", job_id)
                event = default_event(result)
            self._notify("job_finished", event)

    def _send_started(self, job: _Job) -> None:
        job.started_sent = True
        last = job.last_state
        if last is not None and last.start_time is not None:
            job.start = last.start_time
        elif last is not None and last.started:
            job.start = time.time()
        else:  # ended between two looks at the queue (or never ran)
            job.start = start_time(job.logs["stdout"])
        task = self._tasks[job.index]
        self._notify("job_started", JobEvent(number=task.number, overrides=list(task.overrides),
                                             job_id=job.job_id, start=job.start,
                                             logs=dict(job.logs)))

    def _notify(self, method: str, event: JobEvent) -> None:
        try:
            getattr(self.listener, method)(event)
        except Exception:  # noqa: BLE001 - a broken listener must not orphan jobs
            log.exception("listener.%s failed for job %s", method, event.job_id)

    # -- interruption -----------------------------------------------------------------------

    def _interrupted(self, stop: BaseException) -> None:
        arrays = sorted({job.array_id for job in self._live.values()}, key=int)
        if not arrays:
            return
        hangup = getattr(stop, "signum", signal.SIGINT) in (signal.SIGTERM, signal.SIGHUP)
        if hangup and self.keep_on_hangup:
            log.warning("%s: %d Slurm job(s) keep running and record themselves; collect them with "
                        "`gridsweep wait` or a resume (to cancel them: scancel %s)",
                        signal.Signals(stop.signum).name, len(self._live), " ".join(arrays))  # type: ignore
            return
        if self.options.cancel_on_interrupt:
            self.client.cancel(arrays)
            log.warning("Interrupted: cancelled %d unfinished Slurm job(s) (scancel %s)",
                        len(self._live), " ".join(arrays))
        else:
            log.warning("Interrupted: %d Slurm job(s) keep running (cancel_on_interrupt=false); "
                        "to cancel them: scancel %s", len(self._live), " ".join(arrays))

    def _left_running(self) -> None:
        arrays = sorted({job.array_id for job in self._live.values()}, key=int)
        if arrays:
            log.error("The launcher failed; %d Slurm job(s) keep running (scancel %s)",
                      len(self._live), " ".join(arrays))
