"""A packed worker outside Slurm: it claims jobs from the sweep dir until none is left, records
them, never starts one its allocation cannot finish, and gives back what it holds when Slurm's
checkpoint signal comes (grid_sweeper/launch/pack.py)."""
from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from grid_sweeper.job_records import all_records
from grid_sweeper.launch.pack import PackStore, PackWorker, claim, claims


def _square(n: int) -> int:
    return n * n


def _store(sweep_dir: Path, count: int) -> PackStore:
    store = PackStore(str(sweep_dir), "launch-1")
    for n in range(count):
        store.write(n, partial(_square, n), [f"n={n}"])
    store.write_order(list(range(count)))
    return store


def test_a_worker_runs_every_unclaimed_job_once_and_records_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    _store(tmp_path, 6)
    assert claim(str(tmp_path), 4, {"worker": "someone-else"})  # held by another worker
    result = PackWorker(str(tmp_path), "launch-1", max_parallel=2)()
    assert sorted(result["jobs"]) == [0, 1, 2, 3, 5]
    records = all_records(tmp_path)
    assert {n: r["return_value"] for n, r in records.items()} == {0: 0, 1: 1, 2: 4, 3: 9, 5: 25}
    assert all(r["overrides"] == [f"n={n}"] for n, r in records.items())
    again = PackWorker(str(tmp_path), "launch-1", max_parallel=2)()  # a second worker finds nothing to do
    assert again["jobs"] == []


def test_no_job_starts_that_the_allocation_cannot_finish(tmp_path: Path, monkeypatch) -> None:
    _store(tmp_path, 3)
    monkeypatch.setenv("SLURM_JOB_END_TIME", str(int(time.time() + 30)))
    assert PackWorker(str(tmp_path), "launch-1", job_timeout_min=1)()["jobs"] == []
    assert claims(str(tmp_path)) == {} and all_records(tmp_path) == {}
    monkeypatch.setenv("SLURM_JOB_END_TIME", str(int(time.time() + 3600)))
    assert sorted(PackWorker(str(tmp_path), "launch-1", job_timeout_min=1)()["jobs"]) == [0, 1, 2]


def test_the_checkpoint_signal_gives_back_unfinished_claims_and_requeues(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    _store(tmp_path, 3)
    worker = PackWorker(str(tmp_path), "launch-1")
    worker._order, worker._cursor, worker._ends_at = [0, 1, 2], 0, None
    worker._store = PackStore(str(tmp_path), "launch-1")
    first = worker._next_job()
    assert first is not None and first.number == 0 and list(claims(str(tmp_path))) == [0]
    again = worker.checkpoint()
    assert isinstance(again.function, PackWorker) and again.function.launch == "launch-1"  # requeued
    assert worker._next_job() is None  # no new claim once stopping
    assert list(claims(str(tmp_path))) == [0]  # held while the pool stops the job's processes,
    worker._release_unrecorded()  # then given back (the end of the worker's run does this)
    assert claims(str(tmp_path)) == {}  # another worker, or the requeued one, runs it
    assert os.path.exists(tmp_path / ".grid_sweep" / "pack" / "launch-1" / "0.pkl")


def test_workers_start_no_job_once_the_sweep_says_stop(tmp_path: Path) -> None:
    store = _store(tmp_path, 3)
    store.stop_file.write_text("the failure-rate guard\n")
    assert PackWorker(str(tmp_path), "launch-1")()["jobs"] == []
    assert claims(str(tmp_path)) == {}
