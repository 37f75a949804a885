"""Test app for hydra/launcher=grid_slurm: records what each job saw in its output dir.

`a` is the swept value; jobs whose `a` is in `fail` raise, in `slow` sleep `slow_s` seconds
(to be cancelled or time out), others sleep `sleep_s`; those in `ignore_signals` ignore submitit's
checkpoint signal and SIGTERM (so Slurm itself kills them at the time limit). With `requeue_once`, a job's
first run waits for the checkpoint signal (the job is then requeued), its second run completes.
"""

import json
import os
import signal
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    out = Path(HydraConfig.get().runtime.output_dir)
    runs = out / "runs.txt"
    with runs.open("a") as handle:
        handle.write(f"{time.time()}\n")
    job_id = HydraConfig.get().job.id
    started = out / "started.json.tmp"  # whole or absent: tests read it the moment it appears
    started.write_text(json.dumps({"a": cfg.a, "job_id": job_id, "time": time.time()}))
    os.replace(started, out / "started.json")
    if cfg.a in cfg.ignore_signals:  # neither the checkpoint signal nor Slurm's SIGTERM
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    marker = os.environ.get("FAIL_MARKER")  # when set, fail only while this file exists
    if cfg.a in cfg.fail and (marker is None or os.path.exists(marker)):
        raise ValueError(f"task failed on purpose for a={cfg.a}")
    if cfg.requeue_once and len(runs.read_text().splitlines()) == 1:
        time.sleep(600)  # ended by the checkpoint signal (requeue)
    time.sleep(cfg.slow_s if cfg.a in cfg.slow else cfg.sleep_s)
    env = {
        k: os.environ.get(k)
        for k in (
            "CUDA_VISIBLE_DEVICES",
            "SLURM_JOB_ID",
            "SLURM_ARRAY_JOB_ID",
            "SLURM_ARRAY_TASK_ID",
            "SLURM_JOB_PARTITION",
            "SLURM_RESTART_COUNT",
            "SLURMD_NODENAME",
            "GRID_SETUP",
        )
    }
    record = {
        "a": cfg.a,
        "job_id": job_id,
        "num": HydraConfig.get().job.num,
        "env": env,
        "start": float(runs.read_text().splitlines()[-1]),
        "end": time.time(),
    }
    (out / "received.json").write_text(json.dumps(record))
    with (out / "completions.txt").open("a") as handle:  # one line per run that got to its end
        handle.write(f"{time.time()}\n")
    return float(cfg.a) * 2


if __name__ == "__main__":
    main()
