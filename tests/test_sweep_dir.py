"""One sweep per sweep dir (docs/records.md): a live sweep holds its dir, an old sweep's dir is
refused without resume, default dirs never collide, a torn results.jsonl line is reported and
is repaired from the jobs' own records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sweep_helpers import APPS, run_app

from grid_sweeper.job_records import claim
from grid_sweeper.records import load_results, repair_results
from grid_sweeper.sweep_dir import LOCK_FILE

APP = APPS / "sweeper" / "app.py"
GRIDSWEEP = Path(sys.executable).with_name("gridsweep")


def hydra_sweep(tmp_path: Path, sweep_dir: Path, *extra: str, env: dict = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(APP), "-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}",
                             "beta=[1,2]", *extra], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
                                            **(env or {})})


def test_a_second_live_sweep_into_the_same_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    first = hydra_sweep(tmp_path, sweep_dir, env={"JOB_SLEEP": "3"})
    deadline = time.monotonic() + 60
    while not (sweep_dir / "0" / "received.json").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[1,2]"], tmp_path)
    assert second.returncode != 0
    assert f"is in use by a live sweep (pid {first.pid} on " in second.stderr and "Traceback" not in second.stderr
    assert first.wait(timeout=60) == 0  # the first sweep, untouched, ends well
    records = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in records) == [0, 1]  # nothing mixed in


def test_an_old_sweeps_dir_is_refused_without_resume(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    first = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[1,2]"], tmp_path)
    assert first.returncode == 0
    again = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[3,4]"], tmp_path)
    assert again.returncode != 0
    assert "already holds a grid sweep" in again.stderr and "hydra.sweeper.resume=true" in again.stderr
    assert not list(sweep_dir.glob("*/completed.txt"))[2:]  # only the first sweep's two jobs ran
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["total"], summary["completed"]) == (2, 2)


def test_a_killed_sweeps_lock_is_gone_and_resume_takes_the_dir(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    first = hydra_sweep(tmp_path, sweep_dir, "hydra.sweeper.seed=1", env={"JOB_SLEEP": "30"})
    deadline = time.monotonic() + 60
    while not (sweep_dir / LOCK_FILE).exists() or not (sweep_dir / "grid_sweep.yaml").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.kill()
    first.wait()
    resumed = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[1,2]",
                            "hydra.sweeper.seed=1", "hydra.sweeper.resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_two_gridsweep_runs_in_the_same_second_get_their_own_dirs(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(1.0)\n")
    runs = [subprocess.Popen([str(GRIDSWEEP), "run", str(script), "--x", "[1, 2]"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert [r.wait(timeout=120) for r in runs] == [0, 0, 0]
    dirs = sorted(p for p in (tmp_path / "gridsweep_runs").iterdir())
    assert len(dirs) == 3
    for sweep_dir in dirs:
        lines = (sweep_dir / "results.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["job"] for line in lines) == [0, 1]


def test_a_torn_line_is_reported_and_repaired_from_the_jobs_own_record(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    args = ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[1,2,3]", "hydra.sweeper.seed=1"]
    assert run_app(APP, args, tmp_path).returncode == 0
    results = sweep_dir / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # a crash mid-write
    torn = json.loads(lines[2])
    resumed = run_app(APP, [*args, "hydra.sweeper.resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    out = resumed.stdout + resumed.stderr
    assert "results.jsonl line(s) 3 held no record" in out and "1 record(s) restored" in out
    assert "resuming: 3 already completed" in out  # nothing reran: the job's own record stood
    records = [json.loads(line) for line in results.read_text().splitlines()]  # every line whole
    assert sorted(r["job"] for r in records) == [0, 1, 2]
    assert [r for r in records if r["job"] == torn["job"]] == [torn]
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["not_run"]) == (3, 0)


def test_repair_drops_bad_lines_and_adds_the_records_it_lacks(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    record = {"job": 1, "status": "completed"}
    results.write_text('{"job": 0}\ngarbage\n[1]\n{"job": 1')
    claim(tmp_path, record)
    claim(tmp_path, {"job": 2, "status": "failed"})
    assert repair_results(tmp_path) == ([2, 3, 4], 2)
    assert [json.loads(line) for line in results.read_text().splitlines()] == [
        {"job": 0}, record, {"job": 2, "status": "failed"}]
    assert repair_results(tmp_path) == ([], 0)  # nothing left to repair


def test_a_jobs_first_record_stands(tmp_path: Path) -> None:
    first = {"job": 3, "status": "completed", "return_value": 1}
    assert claim(tmp_path, first) == first
    assert claim(tmp_path, {"job": 3, "status": "failed"}) == first  # e.g. a requeued run's, or the launcher's
    assert load_results(tmp_path) == {3: first}
    assert sorted(os.listdir(tmp_path / ".grid_sweep" / "records")) == ["3.json"]  # no temporary left


def test_existing_dir_archive_starts_over_keeping_the_earlier_records_aside(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    args = ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.existing_dir=archive"]
    assert run_app(APP, [*args, "beta=[1,2]"], tmp_path).returncode == 0
    again = run_app(APP, [*args, "beta=[3,4,5]"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "held an earlier sweep: its records moved to" in again.stdout + again.stderr
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["total"], summary["completed"]) == (3, 3)
    [previous] = list((sweep_dir / "previous").iterdir())
    old = yaml.safe_load((previous / "summary.yaml").read_text())
    assert (old["total"], old["completed"]) == (2, 2)
    records = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in records) == [0, 1, 2] and all("beta=1" not in r["overrides"] for r in records)


def test_status_reads_the_dir_alone_live_and_after(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    live = hydra_sweep(tmp_path, sweep_dir, "hydra.sweeper.max_batch_size=1", env={"JOB_SLEEP": "2"})
    deadline = time.monotonic() + 60
    while not (sweep_dir / "results.jsonl").exists() or not (sweep_dir / "results.jsonl").read_text():
        assert live.poll() is None and time.monotonic() < deadline, live.communicate()
        time.sleep(0.05)
    during = subprocess.run([str(GRIDSWEEP), "status", str(sweep_dir)], capture_output=True, text=True, timeout=60)
    assert during.returncode == 0, during.stderr
    assert f"running: pid {live.pid} on " in during.stdout
    assert "1 completed, 0 failed, 1 not ended yet of 2" in during.stdout
    assert live.wait(timeout=60) == 0
    after = subprocess.run([str(GRIDSWEEP), "status", str(sweep_dir)], capture_output=True, text=True, timeout=60)
    assert "not running" in after.stdout and "2 completed, 0 failed of 2" in after.stdout
    missing = subprocess.run([str(GRIDSWEEP), "status", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "holds no grid sweep" in missing.stderr
