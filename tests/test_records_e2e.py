"""Sweep records end to end: the test app in a subprocess, as a user runs it."""
import csv
import json
import re
from pathlib import Path
from typing import Any, Dict, List

import yaml
from sweep_helpers import APPS, run_app

APP = APPS / "sweeper" / "app.py"


def sweep(tmp_path: Path, sweep_dir: Path, *args: str, env: Any = None) -> Any:
    return run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", *args], tmp_path, env)


def results(sweep_dir: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]


def test_mixed_sweep_table_progress_and_summary(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "beta=[1,2,3]", "alpha=[0.5,0.1]", "fail_on_beta=2")
    assert proc.returncode != 0
    table = results(sweep_dir)
    assert [r["job"] for r in table] == list(range(6))
    assert [r["status"] for r in table] == ["completed"] * 2 + ["failed"] * 2 + ["completed"] * 2
    assert [r["return_value"] for r in table] == [0.5, 0.1, None, None, 0.5, 0.1]
    assert table[2]["error"] == "RuntimeError: beta=2 is cursed"
    assert table[3]["overrides"] == ["beta=2", "alpha=0.1", "fail_on_beta=2"]
    assert all(Path(r["output_dir"]) == sweep_dir / str(r["job"]) for r in table)
    rows = list(csv.DictReader((sweep_dir / "results.csv").open()))
    assert [(r["flag.beta"], r["flag.alpha"], r["status"]) for r in rows][:3] == [
        ("1", "0.5", "completed"), ("1", "0.1", "completed"), ("2", "0.5", "failed")]
    # not a terminal: one plain line per finished job, no control characters
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[sweep] job #")]
    assert len(progress) == 6 and "\x1b" not in proc.stderr
    assert re.match(r"\[sweep\] job #2 failed in \d+\.\ds: RuntimeError: beta=2 is cursed \| 3/6 done", progress[2])
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["failed"]) == (4, 2)
    assert [b["return_value"] for b in summary["best"]] == [0.1, 0.1, 0.5, 0.5]
    assert [f["job"] for f in summary["failures"]] == [2, 3]
    output = proc.stdout + proc.stderr
    assert "Sweep summary: 4 completed, 2 failed of 6" in output
    assert "Best jobs (lowest return value):" in output


def test_maximize_flips_the_best_jobs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "alpha=[0.5,0.1,0.9]", "hydra.sweeper.maximize=true")
    assert proc.returncode == 0, proc.stderr
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert [b["return_value"] for b in summary["best"]] == [0.9, 0.5, 0.1]
    assert "Best jobs (highest return value):" in proc.stdout + proc.stderr


def test_resume_reruns_failed_jobs_only_and_keeps_numbers(tmp_path: Path) -> None:
    sweep_dir, marker = tmp_path / "s", tmp_path / "cursed"
    marker.write_text("")
    args = ["beta=[1,2,3]", "alpha=uniform(0,1,2)", "fail_on_beta=2"]
    first = sweep(tmp_path, sweep_dir, *args, env={"FAIL_MARKER": str(marker)})
    assert first.returncode != 0
    marker.unlink()  # the cause of the failures is fixed
    second = sweep(tmp_path, sweep_dir, *args, "hydra.sweeper.resume=true", env={"FAIL_MARKER": str(marker)})
    assert second.returncode == 0, second.stderr
    table = results(sweep_dir)
    completed = [r["job"] for r in table if r["status"] == "completed"]
    assert sorted(completed) == list(range(6))  # every job completed exactly once
    rerun = [r for r in table[6:]]
    assert [r["job"] for r in rerun] == [2, 3]
    first_overrides = {r["job"]: r["overrides"] for r in table[:6]}
    assert all(r["overrides"] == first_overrides[r["job"]] for r in rerun)  # same seed, same values
    assert "resuming: 4 already completed" in second.stdout + second.stderr


def test_resume_refuses_a_changed_definition(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    assert sweep(tmp_path, sweep_dir, "beta=[1,2,3]", "alpha=0.5").returncode == 0
    proc = sweep(tmp_path, sweep_dir, "beta=[1,2]", "alpha=0.5", "hydra.sweeper.resume=true")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "resume refused" in proc.stderr
    assert "flag beta was '[1,2,3]', now '[1,2]'" in proc.stderr
    assert len(results(sweep_dir)) == 3  # nothing ran
    proc = sweep(tmp_path, tmp_path / "empty", "beta=[1,2]", "hydra.sweeper.resume=true")
    assert proc.returncode != 0 and "no grid sweep to resume" in proc.stderr


def test_failure_rate_guard_stops_launching(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "beta=[2,2,2,3,3,3,3,3,3,3]", "fail_on_beta=2",
                 "hydra.sweeper.max_failure_rate=0.2", "hydra.sweeper.max_batch_size=1")
    assert proc.returncode != 0
    table = results(sweep_dir)
    assert [r["status"] for r in table] == ["failed"] * 3  # 3 of 10 > 0.2: nothing more launched
    output = proc.stdout + proc.stderr
    assert "Stopped launching new jobs" in output and "7 job(s) not run" in output
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert summary["not_run"] == 7


def _wait_for(predicate: Any, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_sigkilled_sweep_resumes_and_every_job_completes_exactly_once(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    sweep_dir = tmp_path / "s"
    args = [sys.executable, str(APP), "-m", "hydra/sweeper=grid", "hydra/launcher=grid_local",
            "hydra.launcher.max_parallel=2", f"hydra.sweep.dir={sweep_dir}", "beta=range(8)", "alpha=[0.5]"]
    env = {**os.environ, "JOB_SLEEP": "0.6"}
    sweep_proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results_file = sweep_dir / "results.jsonl"
    _wait_for(lambda: results_file.exists() and len(results_file.read_text().splitlines()) >= 2, 60)
    sweep_proc.send_signal(signal.SIGKILL)  # as the OOM killer would: no clean-up
    sweep_proc.wait(10)
    finished_before = len(results(sweep_dir))
    assert 2 <= finished_before < 8
    # the killed sweep's jobs die with it (they would otherwise finish unrecorded)
    _wait_for(lambda: not _job_processes(str(sweep_dir)), 10)
    resumed = subprocess.run(args + ["hydra.sweeper.resume=true"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    table = results(sweep_dir)
    completed = sorted(r["job"] for r in table if r["status"] == "completed")
    assert completed == list(range(8))  # every job completed exactly once in results.jsonl
    for job in range(8):  # ... and on disk: one finished run per job dir
        assert (sweep_dir / str(job) / "completed.txt").read_text() == "done\n"
    assert len(table) == 8


def _job_processes(marker: str) -> List[int]:
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = next(line for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                             if line.startswith("State:"))
            except (OSError, StopIteration):
                continue
            if marker in cmdline and "Z" not in state.split()[1]:
                pids.append(int(entry))
    return pids


def test_failure_rate_guard_within_a_batch_on_grid_local(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "hydra/launcher=grid_local", "hydra.launcher.max_parallel=1",
                 "beta=[2,2,2,3,3,3,3,3,3,3]", "fail_on_beta=2", "hydra.sweeper.max_failure_rate=0.2")
    assert proc.returncode != 0
    assert [r["status"] for r in results(sweep_dir)] == ["failed"] * 3
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert summary["not_run"] == 7


def test_grid_local_records_timing_pid_and_logs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "hydra/launcher=grid_local", "beta=[1,2]")
    assert proc.returncode == 0, proc.stderr
    for record in results(sweep_dir):
        assert record["duration"] > 0 and record["start"] < record["end"]
        assert int(record["job_id"]) > 0
        assert Path(record["logs"]["stdout"]).parent == sweep_dir / str(record["job"])


def test_resume_with_gaps_launches_once_keeping_numbers(tmp_path: Path) -> None:
    sweep_dir, marker = tmp_path / "s", tmp_path / "cursed"
    marker.write_text("")
    args = ["hydra/launcher=grid_local", "beta=[1,2,1,2,1]", "fail_on_beta=1"]
    assert sweep(tmp_path, sweep_dir, *args, env={"FAIL_MARKER": str(marker)}).returncode != 0
    marker.unlink()
    proc = sweep(tmp_path, sweep_dir, *args, "hydra.sweeper.resume=true", env={"FAIL_MARKER": str(marker)})
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert output.count("grid_local is launching 3 jobs") == 1  # the gaps 0, 2, 4 in one launch
    rerun = results(sweep_dir)[5:]
    assert sorted(r["job"] for r in rerun) == [0, 2, 4]
    assert all(Path(r["output_dir"]) == sweep_dir / str(r["job"]) for r in rerun)
