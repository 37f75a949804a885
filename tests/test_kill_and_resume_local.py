"""A sweep killed with `kill -9` loses nothing that finished and leaves nothing running: every job
records itself the moment it ends, so a resume reruns only the jobs that were running (docs/records.md).
Markers in RUN_LOG (one line per job start and end, with the job's pid) show what ran how often."""
from __future__ import annotations

import collections
import json
import os
import signal
import time
from pathlib import Path
from typing import Dict, List

import pytest
from process_table import wait_gone
from sweep_helpers import APPS, run_app
from test_sweep_dir import hydra_sweep

APP = APPS / "sweeper" / "app.py"


def events(run_log: Path) -> List[List[str]]:
    return [line.split() for line in run_log.read_text().splitlines()] if run_log.exists() else []


def wait_for(condition, what: str, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the sweep ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("launcher", ["basic", "grid_local"])
def test_kill_9_then_resume_reruns_only_the_jobs_that_were_running(tmp_path: Path, launcher: str) -> None:
    sweep_dir, run_log = tmp_path / "s", tmp_path / "run.log"
    extra = ["alpha=range(0,8)", "hydra.sweeper.seed=3"]
    if launcher == "grid_local":
        extra += ["hydra/launcher=grid_local", "hydra.launcher.max_parallel=2"]
    env = {"RUN_LOG": str(run_log), "JOB_SLEEP": "0.6"}
    first = hydra_sweep(tmp_path, sweep_dir, *extra, env=env)
    ended = lambda: sum(e[0] == "end" for e in events(run_log))  # noqa: E731
    wait_for(lambda: ended() >= 4 and len({e[1] for e in events(run_log) if e[0] == "start"}) > ended(),
             "4 jobs ended and another running", first)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    before = events(run_log)
    finished = {e[1] for e in before if e[0] == "end"}
    running = {e[1] for e in before if e[0] == "start"} - finished
    assert running, before
    job_pids = [int(e[2]) for e in before if e[0] == "start" and e[1] in running]
    assert wait_gone(job_pids) == [], "a job outlived its killed sweep"
    assert events(run_log) == before

    resumed = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "beta=[1,2]", *extra,
                            "hydra.sweeper.resume=true"], tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(finished)} already completed" in resumed.stdout + resumed.stderr
    after = events(run_log)[len(before):]
    starts = collections.Counter(e[1] for e in after if e[0] == "start")
    assert set(starts) == {str(n) for n in range(16)} - finished  # the running ones and the rest
    assert set(starts.values()) == {1}
    ends: Dict[str, int] = collections.Counter(e[1] for e in events(run_log) if e[0] == "end")
    assert ends == {str(n): 1 for n in range(16)}  # every job ran to its end exactly once
    records = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in records) == list(range(16))
    assert all(r["status"] == "completed" for r in records)
    own = sorted(os.listdir(sweep_dir / ".grid_sweep" / "records"))
    assert own == sorted(f"{n}.json" for n in range(16))
