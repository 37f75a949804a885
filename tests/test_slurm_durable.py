"""A grid_slurm sweep survives its launching process (docs/records.md, "What survives what"):
jobs record themselves on their nodes, every sbatch is in the sweep's ledger, a resume adopts the
jobs still on Slurm, `gridsweep wait` collects a sweep that hung up or detached. On the real test
cluster; each job's runs.txt (one line per run) shows that it ran exactly once."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from test_slurm_launcher import _command, _env, received, wait_for

GRIDSWEEP = Path(sys.executable).with_name("gridsweep")


def runs(sweep_dir: Path, count: int) -> List[int]:
    """How many times each job's task started."""
    return [len((sweep_dir / str(n) / "runs.txt").read_text().splitlines())
            if (sweep_dir / str(n) / "runs.txt").exists() else 0 for n in range(count)]


def own_records(sweep_dir: Path) -> Dict[int, dict]:
    folder = sweep_dir / ".grid_sweep" / "records"
    return {int(p.stem): json.loads(p.read_text()) for p in folder.glob("*.json")}


def ledger_ids(sweep_dir: Path) -> Dict[int, str]:
    ids: Dict[int, str] = {}
    for line in (sweep_dir / ".grid_sweep" / "ledger.jsonl").read_text().splitlines():
        ids.update({n: job_id for n, job_id, _ in json.loads(line)["jobs"]})
    return ids


def gridsweep(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(GRIDSWEEP), *args], capture_output=True, text=True, timeout=timeout, env=_env())


def start(tmp_path: Path, sweep_dir: Path, args: List[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(_command(sweep_dir, ["hydra/sweeper=grid", *args]), cwd=tmp_path, env=_env(),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sighup_leaves_the_jobs_running_and_gridsweep_wait_collects_them(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = start(tmp_path, sweep_dir, ["a=[1,2,3]", "slow=[[1,2,3]]", "slow_s=6"])
    try:
        wait_for(sweep_dir / "0" / "started.json", 60, proc)
        proc.send_signal(signal.SIGHUP)  # an ssh disconnect
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 129 and "Traceback" not in output, output
    assert re.search(r"SIGHUP: 3 Slurm job\(s\) keep running and record themselves", output), output
    assert sorted(ledger_ids(sweep_dir)) == [0, 1, 2]
    waited = gridsweep("wait", str(sweep_dir))
    assert waited.returncode == 0, waited.stderr
    assert "Sweep summary: 3 completed, 0 failed of 3" in waited.stderr
    assert runs(sweep_dir, 3) == [1, 1, 1]
    records = own_records(sweep_dir)
    assert {n: r["return_value"] for n, r in records.items()} == {0: 2.0, 1: 4.0, 2: 6.0}
    assert {n: r["job_id"] for n, r in records.items()} == ledger_ids(sweep_dir)  # recorded on their nodes
    lines = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in lines if r["status"] == "completed") == [0, 1, 2]
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["not_run"]) == (3, 0)


@pytest.mark.parametrize("cluster", ["slurm_env", "slurm_accounting_env"])
def test_kill_9_then_resume_adopts_the_jobs_still_on_slurm(cluster: str, request, tmp_path: Path) -> None:
    request.getfixturevalue(cluster)
    sweep_dir = tmp_path / "sweep"
    args = ["a=range(1,9)", "sleep_s=5", "hydra.launcher.array_parallelism=4"]  # 4 running, 4 pending
    proc = start(tmp_path, sweep_dir, args)
    try:
        wait_for(sweep_dir / "0" / "started.json", 60, proc)
    finally:
        proc.kill()  # SIGKILL: nothing of ours runs
        proc.communicate()
    assert len(ledger_ids(sweep_dir)) == 8
    resumed = subprocess.run(_command(sweep_dir, ["hydra/sweeper=grid", *args, "hydra.sweeper.resume=true"]),
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    adopted = re.search(r"Adopted (\d+) job\(s\) this sweep submitted earlier", output)
    assert adopted, output
    assert "Slurm array" not in output.split("Adopted")[1]  # nothing submitted again
    assert runs(sweep_dir, 8) == [1] * 8  # every job ran exactly once
    assert sorted(received(sweep_dir)) == list(range(8))
    records = own_records(sweep_dir)
    assert sorted(records) == list(range(8)) and all(r["status"] == "completed" for r in records.values())
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["not_run"]) == (8, 0)


def test_detach_then_status_then_wait(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    began = time.monotonic()
    detached = subprocess.run(_command(sweep_dir, ["hydra/sweeper=grid", "a=[1,2,3]", "fail=[[2]]", "sleep_s=4",
                                                   "hydra.launcher.detach=true"]),
                              cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    output = detached.stdout + detached.stderr
    assert detached.returncode == 0, output
    assert time.monotonic() - began < 30
    assert f"gridsweep status {sweep_dir}" in output and f"gridsweep wait {sweep_dir}" in output
    assert sorted(ledger_ids(sweep_dir)) == [0, 1, 2]
    status = gridsweep("status", str(sweep_dir))
    assert status.returncode == 0, status.stderr
    assert "not running (ended, interrupted or killed)" not in status.stdout or "on Slurm" in status.stdout
    assert re.search(r"on Slurm: \d+ pending, \d+ running", status.stdout), status.stdout
    waited = gridsweep("wait", str(sweep_dir))
    assert waited.returncode == 1, waited.stderr  # one job failed
    assert "Sweep summary: 2 completed, 1 failed of 3" in waited.stderr
    assert "ValueError: task failed on purpose for a=2" in waited.stderr
    assert runs(sweep_dir, 3) == [1, 1, 1]
    records = own_records(sweep_dir)
    assert records[1]["error"] == "ValueError: task failed on purpose for a=2"
    assert records[1]["logs"]["log"].endswith(".log") and os.path.exists(records[1]["logs"]["log"])
    after = gridsweep("status", str(sweep_dir))
    assert "Sweep summary: 2 completed, 1 failed of 3" in after.stdout


def test_a_node_failure_requeues_its_jobs_and_each_is_recorded_once(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = start(tmp_path, sweep_dir, ["a=[1,2,3,4]", "sleep_s=8"])
    try:
        for number in range(4):
            wait_for(sweep_dir / str(number) / "started.json", 60, proc)
        node = next(row["nodes"] for row in slurm_env.squeue(all_states=False) if row["state"] == "RUNNING")
        assert slurm_env.fail_node(node)
        slurm_env.restore_node(node)
        deadline = time.monotonic() + 60
        while not slurm_env.release_held_back():  # requeued, held back by a begin time
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    requeued = re.findall(r"#(\d+) \S+ requeued by Slurm \((\w+)", output)
    assert requeued, output
    again = runs(sweep_dir, 4)
    assert sorted(again) in ([1, 1, 1, 2], [1, 1, 2, 2], [1, 2, 2, 2], [2, 2, 2, 2]) and 2 in again
    records = own_records(sweep_dir)
    assert sorted(records) == [0, 1, 2, 3] and all(r["status"] == "completed" for r in records.values())
    assert {n for n, r in records.items() if r.get("slurm_restarts")} == {n for n in range(4) if again[n] == 2}
    lines = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in lines) == [0, 1, 2, 3]  # one record each


def test_resume_reruns_a_failed_job_instead_of_adopting_its_old_end(slurm_env, tmp_path: Path) -> None:
    sweep_dir, marker = tmp_path / "sweep", tmp_path / "fail-while-here"
    marker.touch()
    args = ["hydra/sweeper=grid", "a=[1,2]", "fail=[[2]]"]
    env = {**_env(), "FAIL_MARKER": str(marker)}
    first = subprocess.run(_command(sweep_dir, args), cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=180)
    assert first.returncode == 1, first.stdout + first.stderr
    marker.unlink()
    again = subprocess.run(_command(sweep_dir, [*args, "hydra.sweeper.resume=true"]), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=180)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "Adopted" not in output and "resuming: 1 already completed" in output
    assert runs(sweep_dir, 2) == [1, 2]  # the failed job ran again, the completed one did not
    assert own_records(sweep_dir)[1]["status"] == "completed"


def test_ctrl_c_stops_gridsweep_wait_not_the_jobs(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    detached = subprocess.run(_command(sweep_dir, ["hydra/sweeper=grid", "a=[1,2]", "sleep_s=6",
                                                   "hydra.launcher.detach=true"]),
                              cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert detached.returncode == 0, detached.stdout + detached.stderr
    waiting = subprocess.Popen([str(GRIDSWEEP), "wait", str(sweep_dir)], env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(sweep_dir / "0" / "started.json", 60, waiting)
        waiting.send_signal(signal.SIGINT)
        _, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 130 and "the jobs go on" in err, err
    assert "cancelled" not in err
    again = gridsweep("wait", str(sweep_dir))
    assert again.returncode == 0, again.stderr
    assert runs(sweep_dir, 2) == [1, 1]
