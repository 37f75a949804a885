"""The sbatch script of one job array that runs submitit's job runner on each element."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List

from submitit.core.job_environment import JobEnvironment
from submitit.core.utils import JobPaths

from .slurm_logs import array_log_patterns
from .slurm_options import SlurmOptions


def sbatch_flags(options: SlurmOptions, count: int, throttle: int) -> Dict[str, Any]:
    """`#SBATCH` options for an array of `count` elements, at most `throttle` running at once."""
    signal = f"{JobEnvironment.USR_SIG}@{int(options.signal_delay_s)}"
    logs = array_log_patterns(options.folder)
    flags: Dict[str, Any] = {
        "job-name": options.name,
        "array": f"0-{count - 1}%{max(1, min(count, throttle))}",
        "output": logs["stdout"].replace("%t", "0"),
        "open-mode": "append",
        # without srun the python process runs in the batch step, which only B: signals reach
        "signal": signal if options.use_srun else f"B:{signal}",
        "time": int(options.timeout_min),
        "nodes": int(options.nodes),
        "ntasks-per-node": int(options.tasks_per_node),
    }
    if not options.stderr_to_stdout:
        flags["error"] = logs["stderr"].replace("%t", "0")
    if options.mem_gb is not None:
        flags["mem"] = _memory(float(options.mem_gb))
    if int(options.max_num_timeout) > 0:
        flags["requeue"] = True  # clusters with JobRequeue=0 refuse `scontrol requeue` otherwise
    optional = {
        "partition": options.partition,
        "cpus-per-task": options.cpus_per_task,
        "cpus-per-gpu": options.cpus_per_gpu,
        "gpus-per-node": options.gpus_per_node,
        "gpus-per-task": options.gpus_per_task,
        "gres": options.gres,
        "mem-per-gpu": options.mem_per_gpu,
        "mem-per-cpu": options.mem_per_cpu,
        "account": options.account,
        "qos": options.qos,
        "constraint": options.constraint,
        "exclude": options.exclude,
        "comment": options.comment,
    }
    flags.update({k: v for k, v in optional.items() if v is not None})
    for key, value in options.additional_parameters.items():
        flags[str(key).replace("_", "-")] = value
    return {k: v for k, v in flags.items() if v is not None and v is not False}


def python_command(options: SlurmOptions) -> str:
    """The interpreter on the nodes: a shell fragment (e.g. `singularity exec img.sif python`)."""
    return options.python if options.python else shlex.quote(sys.executable)


def sbatch_script(options: SlurmOptions, count: int, throttle: int) -> str:
    """Full text of the sbatch script for an array of `count` pickled submissions."""
    lines = ["#!/bin/bash", "", "# Parameters"]
    for key, value in sbatch_flags(options, count, throttle).items():
        lines.append(f"#SBATCH --{key}" if value is True else f"#SBATCH --{key}={_quote(value)}")
    if options.setup:
        lines += ["", "# setup", *options.setup]
    runner = f"{python_command(options)} -u -m grid_sweeper.launch.slurm_submit {shlex.quote(options.folder)}"
    lines += ["", "# command", "export SUBMITIT_EXECUTOR=slurm"]
    lines += _srun_lines(options, runner) if options.use_srun else _batch_step_lines(runner)
    if options.teardown:
        lines += ["", "# teardown", *options.teardown]
    lines += ["exit $_grid_rc", ""]
    return "\n".join(lines)


def _srun_lines(options: SlurmOptions, runner: str) -> List[str]:
    logs = array_log_patterns(options.folder)
    srun = ["srun", "--unbuffered", "--output", logs["stdout"]]
    if not options.stderr_to_stdout:
        srun += ["--error", logs["stderr"]]
    srun += [str(a) for a in options.srun_args]
    return [" ".join(shlex.quote(a) for a in srun) + " " + runner, "_grid_rc=$?"]


def _batch_step_lines(runner: str) -> List[str]:
    """Runs the job in the batch shell, forwarding the checkpoint signal to it (B: signals only
    reach the shell) and waiting until it really exits."""
    sig = JobEnvironment.USR_SIG
    return [
        f"{runner} &",
        "_grid_child=$!",
        f"trap 'kill -s {sig} \"$_grid_child\" 2>/dev/null' {sig}",
        'wait "$_grid_child"',
        'while kill -0 "$_grid_child" 2>/dev/null; do wait "$_grid_child"; done',
        'wait "$_grid_child"; _grid_rc=$?',
    ]


def _memory(mem_gb: float) -> str:
    return f"{int(mem_gb)}G" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}M"


def _quote(value: Any) -> str:
    return shlex.quote(str(value))


def first_folder_without_ids(folder: str) -> Path:
    """The deepest folder of `folder` that does not depend on the job id."""
    return JobPaths.get_first_id_independent_folder(folder)

