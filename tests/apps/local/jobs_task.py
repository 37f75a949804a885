"""What the jobs of jobs_app.py do: succeed, fail in a chosen way, or hang; each writes a record.

Kept apart from the `@hydra.main` script so that tests can import it without side effects.
"""
import json
import os
import signal
import subprocess
import sys
import time

from omegaconf import DictConfig


def write_record(cfg: DictConfig, **extra: object) -> None:
    record = {
        "num": cfg.i,
        "mode": cfg.mode,
        "pid": os.getpid(),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cwd": os.getcwd(),
        **extra,
    }
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, f"{cfg.mode}-{cfg.i}.json"), "w") as f:
        json.dump(record, f)


def run(cfg: DictConfig) -> object:
    print(f"job {cfg.i} starts in mode {cfg.mode}", flush=True)
    mode = cfg.mode
    start = time.time()
    if mode == "raise":
        raise ValueError(f"job {cfg.i} raised on purpose")
    if mode == "exit3":
        sys.exit(3)
    if mode == "exit1":
        os._exit(1)
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":  # a job with a child process of its own, that never ends
        child = subprocess.Popen(["sleep", "60"])
        write_record(cfg, child=child.pid)
        time.sleep(60)
    time.sleep(cfg.seconds)
    write_record(
        cfg, start=start, end=time.time(), env={k: v for k, v in os.environ.items() if k.startswith("GRID_TEST_")}
    )
    return {"i": cfg.i, "square": cfg.i * cfg.i}


class RecordCallback:
    """A Hydra callback (`hydra.callbacks`) that leaves a file for each job start and end."""

    def on_job_start(self, config: DictConfig, **kwargs: object) -> None:
        self._touch(config, f"cb-start-{config.hydra.job.num}")

    def on_job_end(self, config: DictConfig, job_return: object, **kwargs: object) -> None:
        status = job_return.status.name  # type: ignore[attr-defined]
        self._touch(config, f"cb-end-{config.hydra.job.num}-{status}")

    def __getattr__(self, name: str) -> object:  # the other callback hooks: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    @staticmethod
    def _touch(config: DictConfig, name: str) -> None:
        os.makedirs(config.out, exist_ok=True)
        open(os.path.join(config.out, name), "w").close()
