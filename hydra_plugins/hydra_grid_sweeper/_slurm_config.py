"""Structured config of `hydra/launcher=grid_slurm` (see docs/slurm-launcher.md)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class GridSlurmLauncherConf:
    """Everything hydra-submitit-launcher's `submitit_slurm` offers, plus srun_args, use_srun,
    python, teardown, cancel_on_interrupt, detach and poll_interval_s."""

    _target_: str = "hydra_plugins.hydra_grid_sweeper.slurm_launcher.GridSlurmLauncher"

    # where submitit keeps pickles, results and logs; %j becomes the job id (123_4)
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    # Slurm job name
    name: str = "${hydra.job.name}"
    partition: Optional[str] = None
    # time limit of each job, in minutes
    timeout_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: Optional[int] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_node: Optional[int] = None
    gpus_per_task: Optional[int] = None
    # e.g. "gpu:a100:1"
    gres: Optional[str] = None
    # memory per node, in GB
    mem_gb: Optional[float] = None
    # e.g. "8G"
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    exclude: Optional[str] = None
    comment: Optional[str] = None
    # one log file per job instead of .out and .err
    stderr_to_stdout: bool = False
    # the checkpoint signal (USR2) comes that many seconds before the time limit
    signal_delay_s: int = 120
    # requeues allowed after a time limit (the job is checkpointed and run again)
    max_num_timeout: int = 0
    # at most that many jobs of the sweep run at once
    array_parallelism: int = 256
    # shell lines run in the sbatch script before / after the job (module load, conda activate)
    setup: Optional[List[str]] = field(default_factory=list)
    teardown: Optional[List[str]] = field(default_factory=list)
    # extra arguments of srun; use_srun=false runs the job in the batch shell itself
    srun_args: Optional[List[str]] = field(default_factory=list)
    use_srun: bool = True
    # the interpreter on the nodes, a shell fragment; default: this process's python
    python: Optional[str] = None
    # any other sbatch option, e.g. {mail-user: me@example.org, mail-type: END}
    additional_parameters: Optional[Dict[str, Any]] = field(default_factory=dict)
    # Ctrl-C on the sweep cancels its unfinished jobs (SIGTERM/SIGHUP too, except under the grid
    # sweeper, whose jobs record themselves: they go on, for `gridsweep wait` or a resume)
    cancel_on_interrupt: bool = True
    # submit every job, write the ledger and exit; follow with `gridsweep status|wait SWEEP_DIR`
    detach: bool = False
    # packed allocations (docs/slurm-launcher.md): `workers` allocations of the resources above,
    # each pulling the sweep's jobs and running `jobs_per_worker` at a time, `gpus_per_job` GPUs each
    pack: bool = False
    workers: Optional[int] = None
    gpus_per_job: int = 0
    jobs_per_worker: Optional[int] = None
    job_timeout_min: Optional[float] = None
    # seconds between two looks at the queue (result files are looked at every second)
    poll_interval_s: float = 5.0
