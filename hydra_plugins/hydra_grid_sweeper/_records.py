"""Glue between Hydra's JobReturns and the engine's sweep records."""
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from grid_sweeper.events import COMPLETED, FAILED, JobEvent
from hydra_plugins.hydra_grid_sweeper._job_log import job_log_path


def error_text(result: JobReturn) -> str:
    return exception_text(result._return_value)


def exception_text(error: object) -> str:
    """`Type: message` of a failed job's exception (its record's error)."""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def event_of(number: int, result: JobReturn, end: float) -> JobEvent:
    """A JobEvent for a result that a launcher without listener support returned."""
    failed = result.status != JobStatus.COMPLETED
    output_dir = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir", default="") if (
        result.hydra_cfg is not None) else ""
    log_file = job_log_path(result.hydra_cfg) if failed else ""
    return JobEvent(
        number=number,
        overrides=list(result.overrides or []),
        status=FAILED if failed else COMPLETED,
        output_dir=str(output_dir or result.working_dir or ""),
        end=end,
        return_value=None if failed else result._return_value,
        error=error_text(result) if failed else "",
        logs={"log": log_file} if log_file else {},
    )
