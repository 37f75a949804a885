"""Glue between Hydra's JobReturns and the engine's sweep records; resume checks."""
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from grid_sweeper.events import COMPLETED, FAILED, JobEvent

DEFINITION_FILE = "grid_sweep.yaml"


def error_text(result: JobReturn) -> str:
    error = result._return_value
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def event_of(number: int, result: JobReturn, end: float) -> JobEvent:
    """A JobEvent for a result that a launcher without listener support returned."""
    failed = result.status != JobStatus.COMPLETED
    output_dir = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir", default="") if (
        result.hydra_cfg is not None) else ""
    return JobEvent(
        number=number,
        overrides=list(result.overrides or []),
        status=FAILED if failed else COMPLETED,
        output_dir=str(output_dir or result.working_dir or ""),
        end=end,
        return_value=None if failed else result._return_value,
        error=error_text(result) if failed else "",
    )


def save_definition(sweep_dir: Path, definition: Dict[str, Any]) -> None:
    OmegaConf.save(OmegaConf.create(definition), Path(sweep_dir) / DEFINITION_FILE)


def load_definition(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(sweep_dir) / DEFINITION_FILE
    if not path.exists():
        return None
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    return loaded if isinstance(loaded, dict) else None


def _by_key(lines: List[str]) -> Dict[str, str]:
    result = {}
    for line in lines:
        key, _, value = line.partition("=")
        result[key.lstrip("+~")] = value
    return result


def definition_changes(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """What differs between the saved sweep definition and this one, one line per difference."""
    changes = []
    for field in ("strategy", "num_trials", "jobs"):
        if saved.get(field) != current.get(field):
            changes.append(f"{field} was {saved.get(field)!r}, now {current.get(field)!r}")
    before, now = _by_key(saved.get("flags") or []), _by_key(current.get("flags") or [])
    for key in before:
        if key not in now:
            changes.append(f"flag {key} was {before[key]!r}, now absent")
        elif before[key] != now[key]:
            changes.append(f"flag {key} was {before[key]!r}, now {now[key]!r}")
    for key in now:
        if key not in before:
            changes.append(f"flag {key} is new ({now[key]!r})")
    if not changes and list(before) != list(now):
        changes.append(f"flag order was {list(before)}, now {list(now)}")
    return changes
