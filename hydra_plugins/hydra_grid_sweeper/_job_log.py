"""Every failed job keeps its traceback in its log file, whatever the launcher.

Hydra's `run_job` catches a task's exception into the JobReturn and prints nothing, so with the
basic launcher (and joblib, submitit) the job's `<job name>.log` stayed empty. The sweeper hands
launchers the task wrapped in `_job_record.RecordedTask`, which appends the traceback to that file (the one
`hydra.job_logging`'s file handler writes, else `<output dir>/<job name>.log`) before re-raising.
The sweep summary names the same file (`job_log_path`).
"""
import os
import time
import traceback
from typing import Optional

from omegaconf import DictConfig, OmegaConf


def job_log_path(hydra_cfg: Optional[DictConfig]) -> str:
    """The job's log file: `hydra.job_logging.handlers.file.filename`, else `<output dir>/<job name>.log`."""
    if hydra_cfg is None:
        return ""
    try:
        configured = OmegaConf.select(hydra_cfg, "hydra.job_logging.handlers.file.filename", default=None)
        if configured:
            return os.path.abspath(str(configured))
        output_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None)
        name = OmegaConf.select(hydra_cfg, "hydra.job.name", default=None)
    except Exception:  # an interpolation that cannot resolve here
        return ""
    return os.path.join(str(output_dir), f"{name}.log") if output_dir and name else ""


def append_traceback(error: BaseException) -> None:
    from hydra.core.hydra_config import HydraConfig

    try:
        path = job_log_path(HydraConfig.instance().cfg)  # type: ignore[arg-type]
        if not path:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        frames = error.__traceback__.tb_next if error.__traceback__ is not None else None  # not ours
        text = "".join(traceback.format_exception(type(error), error, frames))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"[{stamp}][grid_sweeper][ERROR] - the job failed:\n{text}")
    except Exception:  # the job's own failure is what matters; never hide it behind ours
        pass
