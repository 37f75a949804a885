"""gridsweep's own flags never take the script's, and the script's reach it as meant."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from sweep_helpers import APPS

SCRIPT = APPS / "cli" / "record_args.py"
GRIDSWEEP = Path(sys.executable).with_name("gridsweep")


def gridsweep(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(GRIDSWEEP), "run", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def received(record: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_no_abbreviation_takes_a_script_flag(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--sweep_dir", "s", str(SCRIPT), "--a", "1", "--beta", "[1, 2]", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["argv"][:4] for r in received(record)) == [["--a", "1", "--beta", "1"], ["--a", "1", "--beta", "2"]]


def test_strategy_none_evaluates_nothing(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--strategy", "none", "--sweep_dir", "s", str(SCRIPT),
                     "--name", "unifrom(1,2,3)", "--cmd", "[1, 2", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    [job] = received(record)
    assert (job["name"], job["cmd"]) == ("unifrom(1,2,3)", "[1, 2")


def test_a_toggle_before_key_value_stays_a_toggle(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--sweep_dir", "s", str(SCRIPT), "--verbose", "lr=[1,2]", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    jobs = received(record)
    assert [j["verbose"] for j in jobs] == [True, True]
    assert sorted(j["unknown"] for j in jobs) == [["lr=1"], ["lr=2"]]  # jobs run in parallel


def test_missing_executable_is_refused_up_front(tmp_path: Path) -> None:
    for script in ("no_such_command_here", "./missing.sh", "missing.py"):
        proc = gridsweep(tmp_path, "--sweep_dir", "s", script, "--x", "[1, 2]")
        assert proc.returncode == 2, proc.stderr
        assert "no such" in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "s").exists()


def test_a_hydra_script_gets_one_run_dir_per_job(tmp_path: Path) -> None:
    """Parallel jobs of a Hydra app would share its timestamped run dir; each gets its job dir."""
    proc = gridsweep(tmp_path, "--sweep_dir", "s", "--max_parallel", "2", str(APPS / "lists" / "app.py"),
                     "beta=[1, 2, 3]", "name=x")
    assert proc.returncode == 0, proc.stderr
    got = {n: json.loads((tmp_path / "s" / str(n) / "received.json").read_text()) for n in range(3)}
    assert [(got[n]["beta"], got[n]["name"]) for n in range(3)] == [(1, "x"), (2, "x"), (3, "x")]
    assert not (tmp_path / "outputs").exists()
