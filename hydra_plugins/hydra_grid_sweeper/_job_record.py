"""The task the grid sweeper hands every launcher: the user's task, recording its own end.

Whatever the launcher (basic, joblib, submitit, ray, ours), the task runs in the job's process,
so this wrapper writes the job's record into the sweep dir the moment the task returns or raises
(`grid_sweeper.job_records`), before the launcher hears of it: a result never depends on the
launching process surviving, and a resume skips every job that completed, even one whose batch
never returned. A failure's traceback also goes to the job's log file (`_job_log`).
"""
import functools
import os
import time
from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf


class RecordedTask:
    """The task function, writing the job's record (and a failure's traceback) as it ends."""

    def __init__(self, task: Any, sweep_dir: str) -> None:
        self.task = task
        self.sweep_dir = os.path.abspath(sweep_dir)  # jobs may change their working dir
        functools.update_wrapper(self, task)  # callbacks that look at the task see its name

    def __call__(self, cfg: Any) -> Any:
        from hydra_plugins.hydra_grid_sweeper._job_log import append_traceback

        start = time.time()
        try:
            value = self.task(cfg)
        except Exception as error:
            append_traceback(error)
            self._record(start, error=error)
            raise
        self._record(start, value=value)
        return value

    def _record(self, start: float, value: Any = None, error: Any = None) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            config = HydraConfig.instance().cfg
            if config is None or OmegaConf.select(config, "hydra.job.num") is None:
                return
            record = _record_of(config, start, value, error)
            from grid_sweeper.job_records import claim

            claim(self.sweep_dir, record)
        except Exception as failure:  # the job's own outcome matters more than our record of it
            import warnings

            warnings.warn(f"grid sweeper: could not record the job's end: {failure}", stacklevel=2)


def _record_of(config: DictConfig, start: float, value: Any, error: Any) -> Dict[str, Any]:
    from grid_sweeper.events import COMPLETED, FAILED, JobEvent
    from grid_sweeper.launch.job_env import job_logs, slurm_job_id
    from grid_sweeper.records import record_of
    from hydra_plugins.hydra_grid_sweeper._job_log import job_log_path
    from hydra_plugins.hydra_grid_sweeper._records import exception_text

    logs = job_logs()
    if error is not None:
        log_file = job_log_path(config)
        if log_file:
            logs["log"] = log_file
    event = JobEvent(
        number=int(config.hydra.job.num),
        overrides=[str(o) for o in OmegaConf.to_container(config.hydra.overrides.task)],
        status=FAILED if error is not None else COMPLETED,
        job_id=slurm_job_id() or str(os.getpid()),
        output_dir=str(OmegaConf.select(config, "hydra.runtime.output_dir", default="") or ""),
        start=start, end=time.time(),
        return_value=value, error=exception_text(error) if error is not None else "", logs=logs,
    )
    record = record_of(event)
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if restarts:
        record["slurm_restarts"] = restarts  # requeued by Slurm (node failure, preemption...)
    return record
