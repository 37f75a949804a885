"""The ledger of submissions: which job numbers went out as which Slurm job ids.

`<sweep dir>/.grid_sweep/ledger.jsonl` gets one line per `sbatch` (an array), appended and fsynced
the moment `sbatch` returns, before any waiting: the job numbers, their Slurm job ids and
overrides, and the Slurm options they were submitted with (where their result files and logs
are). A resume reads it to adopt the jobs still on Slurm instead of submitting them again;
`gridsweep wait` to follow a detached sweep. A job's last submission is the one that counts.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from grid_sweeper.job_records import STATE_DIR

LEDGER = f"{STATE_DIR}/ledger.jsonl"


@dataclass
class Submission:
    """One job as it was submitted."""

    number: int
    job_id: str
    array_id: str
    overrides: List[str] = field(default_factory=list)
    options: Dict[str, Any] = field(default_factory=dict)  # SlurmOptions' fields, as submitted
    submitted: float = 0.0


def record_submission(sweep_dir: Path, array_id: str, options: Dict[str, Any],
                      jobs: Sequence[Tuple[int, str, Sequence[str]]]) -> None:
    """Append one array's submission: `jobs` holds (job number, Slurm job id, overrides)."""
    path = Path(sweep_dir) / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"array_id": array_id, "submitted": time.time(), "options": options,
            "jobs": [[int(n), str(job_id), [str(o) for o in overrides]] for n, job_id, overrides in jobs]}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
        out.flush()
        os.fsync(out.fileno())


def void(sweep_dir: Path, numbers: Sequence[int]) -> None:
    """The submissions of these jobs are over (a resume reruns them after a failure): no later
    resume or `gridsweep wait` may take their ended Slurm jobs for theirs."""
    numbers = [int(n) for n in numbers]
    path = Path(sweep_dir) / LEDGER
    if not numbers or not path.exists():
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"void": numbers, "time": time.time()}) + "\n")
        out.flush()
        os.fsync(out.fileno())


def submissions(sweep_dir: Path) -> Dict[int, Submission]:
    """Job number -> its last submission, unless voided since (a torn line, from a crash
    mid-write, is skipped)."""
    path = Path(sweep_dir) / LEDGER
    found: Dict[int, Submission] = {}
    if not path.exists():
        return found
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
                for number in entry.get("void", []):
                    found.pop(int(number), None)
                for number, job_id, overrides in entry.get("jobs", []):
                    found[int(number)] = Submission(int(number), str(job_id), str(entry.get("array_id", "")),
                                                    list(overrides), dict(entry.get("options") or {}),
                                                    float(entry.get("submitted") or 0))
            except (ValueError, KeyError, TypeError):
                continue
    return found
