"""What a job's own process knows of itself, for the record it writes: its Slurm job id and its log
files. One home for the Hydra task wrapper, `gridsweep`'s Slurm jobs and packed workers."""
from __future__ import annotations

import os
from typing import Dict


def slurm_job_id() -> str:
    """The Slurm job (array element `123_4`) this process runs in; '' outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", "")


def job_logs() -> Dict[str, str]:
    """The job's log files: its own when it runs in a pool's process (`grid_local`, a packed
    Slurm worker), else the Slurm job's when it runs as a submitit job; {} otherwise."""
    from grid_sweeper.launch.child import current_logs

    own = current_logs()
    if own or not os.environ.get("SUBMITIT_EXECUTOR"):
        return own
    try:
        from submitit import JobEnvironment

        paths = JobEnvironment().paths
        return {"stdout": str(paths.stdout), "stderr": str(paths.stderr)}
    except Exception:  # noqa: BLE001 - not inside a submitit job after all
        return {}
