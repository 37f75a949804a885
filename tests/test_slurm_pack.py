"""`hydra.launcher.pack=true` on the test cluster: a few allocations pull the sweep's jobs and run
them as grid_local does, one GPU set each (docs/slurm-launcher.md, "Packed allocations")."""
from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List

from test_slurm_durable import own_records, runs, start
from test_slurm_launcher import _command, _env, max_overlap, received, wait_for

PACK = ["hydra/sweeper=grid", "hydra.launcher.pack=true"]


def overlapping(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_sixteen_one_gpu_jobs_in_one_allocation_of_four_gpus(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(_command(sweep_dir, [*PACK, "a=range(0,16)", "sleep_s=1", "hydra.launcher.workers=1",
                                               "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
                                               "hydra.launcher.gpus_per_job=1"]),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Packed: 16 job(s) in 1 allocation(s), 4 at a time in each, 1 GPU(s) per job" in output
    got = received(sweep_dir)
    assert sorted(got) == list(range(16))
    assert len({r["env"]["SLURM_JOB_ID"] for r in got.values()}) == 1  # one allocation
    for record in got.values():
        assert record["env"]["SLURM_JOB_PARTITION"] == "gpu"
        assert len(record["env"]["CUDA_VISIBLE_DEVICES"].split(",")) == 1
    assert max_overlap(list(got.values())) == 4  # 4 at a time
    for a, b in itertools.combinations(got.values(), 2):
        if overlapping(a, b):
            assert a["env"]["CUDA_VISIBLE_DEVICES"] != b["env"]["CUDA_VISIBLE_DEVICES"]
    window = max(r["end"] for r in got.values()) - min(r["start"] for r in got.values())
    assert 4 <= window < 8, window  # about 4 waves of 1 s
    assert runs(sweep_dir, 16) == [1] * 16
    records = own_records(sweep_dir)
    assert sorted(records) == list(range(16)) and all(r["status"] == "completed" for r in records.values())
    assert {n: r["return_value"] for n, r in records.items()} == {n: 2.0 * n for n in range(16)}
    assert all(Path(r["logs"]["stdout"]) == sweep_dir / str(n) / "stdout.log" for n, r in records.items())
    lines = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["job"] for r in lines) == list(range(16))  # one record each


def test_a_killed_worker_loses_no_job(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = [*PACK, "a=range(0,12)", "sleep_s=3", "hydra.launcher.workers=2", "hydra.launcher.jobs_per_worker=2"]
    proc = start(tmp_path, sweep_dir, args[1:])
    try:
        wait_for(sweep_dir / "0" / "started.json", 90, proc)
        victim = json.loads((sweep_dir / ".grid_sweep" / "claims" / "0").read_text())["worker"]
        subprocess.run(["scancel", victim], check=True, env=_env())  # one worker's Slurm task
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = own_records(sweep_dir)
    assert all(r["status"] == "completed" for r in done.values()), output
    if len(done) < 12:  # the stopped jobs were given back after the other worker had finished
        assert proc.returncode == 1 and "resume" in output, output
        again = subprocess.run(_command(sweep_dir, [*args, "hydra.sweeper.resume=true"]), cwd=tmp_path,
                               env=_env(), capture_output=True, text=True, timeout=240)
        assert again.returncode == 0, again.stdout + again.stderr
    else:
        assert proc.returncode == 0, output
    records = own_records(sweep_dir)
    assert sorted(records) == list(range(12)) and all(r["status"] == "completed" for r in records.values())
    completed: List[int] = [len((sweep_dir / str(n) / "completions.txt").read_text().splitlines())
                            for n in range(12)]
    assert completed == [1] * 12  # every job ran to its end exactly once
    assert 2 in runs(sweep_dir, 12)  # the killed worker's jobs started again elsewhere
    assert sorted(received(sweep_dir)) == list(range(12))


def test_the_failure_rate_guard_stops_packed_workers(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    # jobs 0 and 1 fail at once, the others take 2 s each: the sweep's stop (it looks every 0.5 s)
    # reaches the worker while a job that does not fail runs
    proc = subprocess.run(_command(sweep_dir, [*PACK, "a=range(0,8)", "fail=[[0,1]]", "sleep_s=2",
                                               "hydra.sweeper.max_failure_rate=0.2", "hydra.launcher.workers=1"]),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "the packed workers start no new job" in output
    ran = sum(1 for n in range(8) if (sweep_dir / str(n) / "runs.txt").exists())
    assert 3 <= ran <= 5, output  # stopped once more than 20% of 8 had failed
    assert len(own_records(sweep_dir)) == ran


def test_the_time_limit_signal_requeues_the_worker_and_loses_no_job(slurm_env, tmp_path: Path) -> None:
    """Slurm's USR2 before the time limit (sent here with scancel, as Slurm sends it: its own
    timing may come up to a minute early): the worker stops claiming, gives back the job it was
    running and requeues itself; its second run does the rest. Each job completes exactly once."""
    sweep_dir = tmp_path / "sweep"
    with slurm_env.releasing_held_back():  # a requeued job waits ~2 min (BeginTime) unless released
        proc = start(tmp_path, sweep_dir, [*PACK[1:], "a=range(0,5)", "sleep_s=3", "hydra.launcher.workers=1",
                                           "hydra.launcher.max_num_timeout=1"])
        try:
            wait_for(sweep_dir / "1" / "started.json", 90, proc)  # the second job runs
            worker = json.loads((sweep_dir / ".grid_sweep" / "claims" / "1").read_text())["worker"]
            subprocess.run(["scancel", "--signal=USR2", worker], check=True, env=_env())
            output, _ = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, output
    assert re.search(r"requeued by Slurm .*requeued 1 time", output), output
    completions = [len((sweep_dir / str(n) / "completions.txt").read_text().splitlines()) for n in range(5)]
    assert completions == [1] * 5, output
    assert runs(sweep_dir, 5)[1] == 2  # the job running at the signal started again after the requeue
    restarts = {n: r["env"]["SLURM_RESTART_COUNT"] for n, r in received(sweep_dir).items()}
    assert restarts[0] in (None, "0") and restarts[4] == "1", restarts  # both runs of the worker did jobs
