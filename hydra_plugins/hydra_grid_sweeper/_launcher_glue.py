"""What the grid sweeper and its launchers agree on, and the Hydra glue both launchers share.

The contract (`NumberedLauncher`): besides Hydra's `launch(job_overrides, initial_job_idx)`, our
launchers take `launch_jobs(job_overrides, numbers, listener)`: explicit job numbers (a resumed
sweep's gaps, kept in one launch) and a `grid_sweeper.events.JobListener` told of each job's start
and end as it happens (so records are written then, not when a batch returns). The grid sweeper
uses it when a launcher has it, and Hydra's `launch()` with any other launcher.
"""
from __future__ import annotations

import copy
import os
import sys
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

try:
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover - Python < 3.8
    from typing_extensions import Protocol, runtime_checkable  # type: ignore


@runtime_checkable
class NumberedLauncher(Protocol):
    """A launcher that runs the jobs with the given numbers and reports each as it starts and ends."""

    def launch_jobs(
        self, job_overrides: Sequence[Sequence[str]], numbers: Sequence[int], listener: Any
    ) -> Sequence[JobReturn]: ...


def consecutive(initial_job_idx: int, count: int) -> Sequence[int]:
    """The numbers Hydra's `launch()` means: `count` jobs from `initial_job_idx` on."""
    return range(initial_job_idx, initial_job_idx + count)


def output_dir(config: DictConfig) -> str:
    """A composed job config's `hydra.sweep.dir`/`hydra.sweep.subdir`, absolute, as `run_job`
    makes it (`_run_job.sweep_output_dir`)."""
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.hydra_grid_sweeper._run_job import sweep_output_dir, view_as_hydra_config

    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    try:
        view_as_hydra_config(config)  # for `${hydra:...}` in the subdir
        return os.path.abspath(sweep_output_dir(config))
    finally:
        hydra_config.cfg = previous  # type: ignore[assignment]


def failed_return(overrides: Sequence[str], error: Any, config: Optional[DictConfig]) -> JobReturn:
    """A FAILED JobReturn for a job whose process sent none back (crash, kill, Slurm state);
    with the job's composed `config`, its `cfg`, `hydra_cfg`, task name and working dir too, as
    Hydra's callbacks and `run_job` would have them."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret._return_value = error
    if config is None:
        return ret
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    ret.cfg = task_cfg
    ret.hydra_cfg = OmegaConf.masked_copy(config, "hydra")
    ret.task_name = str(config.hydra.job.name)
    ret.working_dir = output_dir(config)
    return ret


def end_interrupted(stop: BaseException, listener: Any) -> None:
    """Ctrl-C or SIGTERM inside a launch: under the grid sweeper (a listener) it is the sweeper's
    to end the sweep; under any other sweeper, end as the grid sweeper does: its exit code, no
    traceback."""
    if listener is None:
        from grid_sweeper.interrupts import exit_code

        sys.exit(exit_code(stop))
