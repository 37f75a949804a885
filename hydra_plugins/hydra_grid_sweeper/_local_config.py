"""Structured config of `hydra/launcher=grid_local` (see docs/local-launcher.md)."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class GridLocalLauncherConf:
    _target_: str = "hydra_plugins.hydra_grid_sweeper.local_launcher.GridLocalLauncher"
    # `env` reaches the launcher unresolved; it is resolved per job
    _recursive_: bool = False

    # jobs running at the same time; null: the number of GPU sets when gpus_per_job > 0,
    # else the number of CPUs
    max_parallel: Optional[int] = None

    # GPU ids to hand out; null: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`, else none
    gpus: Optional[List[str]] = None

    # GPUs given to each job (its CUDA_VISIBLE_DEVICES); 0: the launcher assigns none
    gpus_per_job: int = 0

    # per-job time limit in minutes (SIGTERM, then SIGKILL after kill_grace_s); null: none
    timeout_min: Optional[float] = None

    # extra environment variables of each job, resolved against the job's config; escape
    # what only exists per job: {SEED: "${seed}", RUN: "\\${hydra:job.num}"}
    env: Dict[str, str] = field(default_factory=dict)

    # fork: start jobs from this warm process (falls back to spawn where forking is unsafe);
    # spawn: a fresh interpreter per job
    start_method: str = "fork"

    # echo each job's output lines to the console with a [job N] prefix
    console_output: bool = True

    # longest echoed line, in characters
    console_width: int = 200

    # seconds between SIGTERM and SIGKILL when a job is stopped (timeout, Ctrl-C)
    kill_grace_s: float = 5.0
