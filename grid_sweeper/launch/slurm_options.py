"""Options of a SLURM submission: what `sbatch` is asked for and how the submitter behaves."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

_FLAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass
class SlurmOptions:
    """Resources and behaviour of one sweep's SLURM jobs (see docs/slurm-launcher.md)."""

    folder: str = ".submitit/%j"
    name: str = "grid"
    partition: Optional[str] = None
    timeout_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: Optional[int] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_node: Optional[int] = None
    gpus_per_task: Optional[int] = None
    gres: Optional[str] = None
    mem_gb: Optional[float] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    exclude: Optional[str] = None
    comment: Optional[str] = None
    stderr_to_stdout: bool = False
    signal_delay_s: int = 120
    max_num_timeout: int = 0
    array_parallelism: int = 256
    setup: List[str] = field(default_factory=list)
    teardown: List[str] = field(default_factory=list)
    srun_args: List[str] = field(default_factory=list)
    use_srun: bool = True
    python: Optional[str] = None
    additional_parameters: Dict[str, Any] = field(default_factory=dict)
    cancel_on_interrupt: bool = True
    detach: bool = False  # submit everything and return: the jobs record themselves
    # packed allocations: `workers` allocations, each pulling jobs and running them as grid_local does
    pack: bool = False
    workers: Optional[int] = None  # default: enough for the sweep, at most array_parallelism
    gpus_per_job: int = 0  # GPUs of the allocation's CUDA_VISIBLE_DEVICES each packed job gets
    jobs_per_worker: Optional[int] = None  # at once; default: gpus_per_node // gpus_per_job, else 1
    job_timeout_min: Optional[float] = None  # per packed job; no job starts that could not finish
    poll_interval_s: float = 5.0
    # how long a job that Slurm says ended may take to show its result file (shared filesystems lag)
    result_grace_s: float = 15.0
    # how long a job unknown to squeue and scontrol, without a result file, is waited for
    vanished_grace_s: float = 60.0

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SlurmOptions:
        """Builds options from a plain mapping, rejecting unknown keys with the valid ones listed."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SLURM option(s) {unknown}; valid: {sorted(known)}")
        data = {k: _plain(v) for k, v in values.items()}
        for key in ("setup", "teardown", "srun_args", "additional_parameters"):
            if key in data and data[key] is None:
                data[key] = {} if key == "additional_parameters" else []
        return cls(**data)

    def validate(self) -> None:
        """Raises ValueError for values sbatch would reject or that would break the script."""
        positive = {
            "timeout_min": self.timeout_min,
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "array_parallelism": self.array_parallelism,
        }
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("signal_delay_s", "max_num_timeout"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("poll_interval_s",):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for key, value in self.additional_parameters.items():
            if not _FLAG_NAME.match(str(key)):
                raise ValueError(f"additional_parameters: invalid sbatch option name {key!r}")
            _check_one_line(f"additional_parameters.{key}", value)
        for name in ("name", "partition", "gres", "mem_per_gpu", "mem_per_cpu", "account", "qos",
                     "constraint", "exclude", "comment", "folder", "python"):
            _check_one_line(name, getattr(self, name))
        for arg in self.srun_args:
            _check_one_line("srun_args", arg)

    @property
    def num_tasks(self) -> int:
        """Tasks per job (each runs the callable; task 0's result is the job's)."""
        return max(1, int(self.nodes)) * max(1, int(self.tasks_per_node))


def _check_one_line(name: str, value: Any) -> None:
    if value is not None and ("\n" in str(value) or "\r" in str(value)):
        raise ValueError(f"{name} must be a single line, got {value!r}")


def _plain(value: Any) -> Any:
    """Tuples to lists, nested mappings to dicts (values coming from OmegaConf containers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
