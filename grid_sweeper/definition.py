"""The saved definition of a sweep (grid_sweep.yaml), and what a resume compares against it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

DEFINITION_FILE = "grid_sweep.yaml"


def save_definition(sweep_dir: Path, definition: Dict[str, Any]) -> None:
    import yaml

    path = Path(sweep_dir) / DEFINITION_FILE
    path.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")


def load_definition(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    import yaml

    path = Path(sweep_dir) / DEFINITION_FILE
    if not path.exists():
        return None
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def _by_key(lines: List[str]) -> Dict[str, str]:
    from grid_sweeper.flag_text import name_and_value

    return dict(name_and_value(line) for line in lines)


def definition_changes(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """What differs between the saved sweep definition and this one, one line per difference."""
    changes = []
    for field in ("command", "strategy", "num_trials", "jobs"):
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
