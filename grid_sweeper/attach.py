"""`gridsweep wait SWEEP_DIR`: attach to a sweep whose launching process is gone (detached,
hung up, killed) and follow it to its end from its dir alone.

The dir says everything needed: the definition (how many jobs), the jobs' own records (who ended
how), and the ledger (which jobs went to Slurm as which job ids, with which options). Jobs that
have no record yet are watched on Slurm as the launcher would (their result files, the
controller's states, no accounting needed); a job Slurm no longer knows and that left no result is
recorded as failed with what Slurm last said. At the end: results.csv and summary.yaml, as a
sweep that never detached writes them. A live sweep that holds the dir is waited for instead.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from grid_sweeper.events import FAILED, JobEvent

log = logging.getLogger("gridsweep")


def wait_for_sweep(sweep_dir: Path) -> Tuple[Dict[str, Any], str]:
    """Follow the sweep in `sweep_dir` until every submitted job has ended; its summary and text."""
    from grid_sweeper.definition import load_definition
    from grid_sweeper.progress import Progress
    from grid_sweeper.records import SweepRecorder, conclude, load_results, repair_results
    from grid_sweeper.status import NoSweep
    from grid_sweeper.sweep_dir import SweepDirLock, live_holder

    sweep_dir = Path(sweep_dir)
    definition = load_definition(sweep_dir)
    if definition is None:
        raise NoSweep(f"{sweep_dir} holds no grid sweep (no grid_sweep.yaml)")
    holder = live_holder(sweep_dir)
    if holder:
        log.info(f"A live sweep holds {sweep_dir} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}): "
                 "waiting for it to end")
    lock = SweepDirLock(sweep_dir).acquire(wait=True)
    try:
        repair_results(sweep_dir)
        total = int(definition.get("jobs") or 0)
        records = load_results(sweep_dir)
        swept = list(definition.get("swept") or [])
        recorder = SweepRecorder(sweep_dir, total, swept, progress=Progress(total, eta=False),
                                 already_done=len(records))
        listener: Any = recorder
        if definition.get("command"):  # a gridsweep script: its metric is its stdout's last line
            from grid_sweeper.script_metrics import MetricListener

            listener = MetricListener(recorder, sweep_dir)
        try:
            _follow_slurm_jobs(sweep_dir, set(records), listener)
            _follow_packed_workers(sweep_dir, total, set(records), listener)
        finally:
            recorder.close()
        return conclude(sweep_dir, total, swept, definition.get("metric"), bool(definition.get("maximize")))
    finally:
        lock.release()


def _follow_slurm_jobs(sweep_dir: Path, recorded: set, listener: Any) -> None:
    from grid_sweeper.launch.slurm import GONE, SlurmOptions, SlurmRunner, SlurmTask
    from grid_sweeper.launch.slurm_logs import log_paths
    from grid_sweeper.launch.slurm_results import ended_without_result
    from grid_sweeper.ledger import submissions

    waiting = [s for n, s in sorted(submissions(sweep_dir).items()) if n not in recorded]
    if not waiting:
        return
    # waiting is not owning: Ctrl-C stops the waiting, never the jobs
    options = SlurmOptions.from_mapping({**waiting[-1].options, "detach": False, "cancel_on_interrupt": False})
    runner = SlurmRunner(options, listener=listener, keep_on_hangup=True)
    states = runner.classify({s.job_id: s.options.get("folder", options.folder) for s in waiting})
    follow: List[Any] = []
    for submission in waiting:
        folder = submission.options.get("folder", options.folder)
        if states[submission.job_id] != GONE:
            follow.append(submission)
            continue
        known = runner.client.job_state(submission.job_id) or runner.client.accounting_state(submission.job_id)
        said = known.describe() if known is not None else "unknown to Slurm now"
        logs = log_paths(folder, submission.job_id, stderr_to_stdout=options.stderr_to_stdout)
        error = ended_without_result(submission.job_id, said, known.state if known else "VANISHED", logs)
        listener.job_finished(JobEvent(
            submission.number, submission.overrides, status=FAILED, job_id=submission.job_id,
            start=known.start_time if known else None, end=known.end_time if known else None,
            error=str(error).splitlines()[0], logs=logs))
    if follow:
        log.info(f"Following {len(follow)} Slurm job(s) of {sweep_dir} until they end")
        tasks = [SlurmTask(fn=_never_submitted, number=s.number, overrides=list(s.overrides),
                           label=" ".join(s.overrides)) for s in follow]
        adopted = {i: (s.job_id, s.options.get("folder", options.folder)) for i, s in enumerate(follow)}
        runner.run(tasks, adopted=adopted)


def _follow_packed_workers(sweep_dir: Path, total: int, recorded: set, listener: Any) -> None:
    """A packed sweep: hear its jobs from the dir (claims, records) while any worker is on Slurm."""
    from grid_sweeper.launch.pack import WORKERS_FILE, follow_workers

    if not (sweep_dir / WORKERS_FILE).exists():
        return
    log.info(f"Following the packed workers of {sweep_dir} until they end")
    follow_workers(str(sweep_dir), {n: [] for n in range(total) if n not in recorded}, listener)


def ledger_writer(sweep_dir: Path, options: Any) -> Any:
    """The runner's `on_submitted`: each sbatch into the sweep's ledger the moment it returns."""
    import dataclasses

    from grid_sweeper.ledger import record_submission

    fields = dataclasses.asdict(options)
    return lambda array_id, jobs: record_submission(sweep_dir, array_id, fields, jobs)


def adoptable(runner: Any, sweep_dir: Path, numbers: Sequence[int]) -> Dict[int, Tuple[str, str]]:
    """Index in `numbers` -> (Slurm job id, folder) of each job an earlier run of this sweep
    submitted that is still on Slurm or ended with a result: watched, never submitted twice (a
    resume after a kill -9, a hangup or a detach). One that ended without a result, or that Slurm
    forgot, runs again."""
    from grid_sweeper.launch.slurm import GONE
    from grid_sweeper.ledger import submissions

    earlier = submissions(sweep_dir)
    index_of = {number: index for index, number in enumerate(numbers)}
    mine = {s.job_id: s for n, s in earlier.items() if n in index_of}
    if not mine:
        return {}
    states = runner.classify({job_id: s.options.get("folder", "") for job_id, s in mine.items()})
    gone = sum(state == GONE for state in states.values())
    if gone:
        log.info(f"{gone} job(s) submitted earlier ended without a result or are gone from Slurm: they run again")
    return {index_of[s.number]: (job_id, s.options.get("folder", ""))
            for job_id, s in mine.items() if states.get(job_id) != GONE}


def _never_submitted() -> None:  # pragma: no cover - adopted tasks are watched, not submitted
    raise RuntimeError("an adopted job is never submitted again")


def still_on_slurm(sweep_dir: Path) -> str:
    """What of this dir's earlier sweep still runs on Slurm ('' when nothing does): submitted jobs
    without a record, packed workers. Slurm is asked only when the dir submitted anything."""
    from grid_sweeper.launch.pack import live_workers
    from grid_sweeper.launch.slurm_state import SlurmClient, split_ids
    from grid_sweeper.ledger import submissions
    from grid_sweeper.records import load_results

    recorded = set(load_results(sweep_dir))
    waiting = {s.job_id for n, s in submissions(sweep_dir).items() if n not in recorded}
    client = SlurmClient(timeout_s=20)
    workers = live_workers(str(sweep_dir), client)
    if workers is None:
        return "Slurm's controller cannot be asked whether its packed workers still run"
    if workers:
        return f"packed workers {' '.join(workers)}"
    if not waiting:
        return ""
    states = client.queue_states({split_ids(j)[0] for j in waiting})
    if states is None:
        return f"{len(waiting)} submitted job(s) without a record, and Slurm's controller cannot be asked"
    active = sorted(j for j in waiting if states.get(j) is not None and states[j].active)
    return f"{len(active)} job(s): {' '.join(active[:10])}{' ...' if len(active) > 10 else ''}" if active else ""


def slurm_states(sweep_dir: Path, recorded: set) -> Dict[str, int]:
    """For `gridsweep status`: how many submitted jobs without a record Slurm says are pending
    and running (none when Slurm cannot be asked)."""
    from grid_sweeper.launch.slurm_state import SlurmClient, split_ids
    from grid_sweeper.ledger import submissions

    waiting = {s.job_id for n, s in submissions(sweep_dir).items() if n not in recorded}
    counts = {"submitted": len(waiting), "pending": 0, "running": 0}
    if not waiting:
        return counts
    states = SlurmClient(timeout_s=20).queue_states({split_ids(j)[0] for j in waiting})
    if states is None:
        counts["unreachable"] = 1
        return counts
    for job_id in waiting:
        state = states.get(job_id)
        if state is not None and state.started:
            counts["running"] += 1
        elif state is not None and state.active:
            counts["pending"] += 1
    return counts
