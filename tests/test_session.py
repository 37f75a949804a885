"""The engine's sweep session, which both front ends drive: plan, dry run, start, resume, end."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grid_sweeper.events import COMPLETED, FAILED, JobEvent
from grid_sweeper.expressions import parse_expression
from grid_sweeper.session import OptionNames, SweepError, SweepSession, SweepSettings
from grid_sweeper.space import Flag

FLAGS = [Flag("a", parse_expression("[1, 2, 3]")), Flag("b", parse_expression("uniform(0, 1, 2)"))]
NAMES = OptionNames(seed="--seed {}", num_trials="--num_trials {}", resume="use --sweep_dir {}")


def session(tmp_path: Path, **settings: object) -> SweepSession:
    return SweepSession(tmp_path / "sweep", SweepSettings(**settings), NAMES, identity={"flags": ["a=[1, 2, 3]"]})


def run_all(s: SweepSession, fail: int = -1) -> None:
    numbers, _ = s.start()
    recorder = s.recorder(["a", "b"])
    for n in numbers:
        recorder.job_finished(JobEvent(n, [f"a={s.plan_[n][0][1]}"], status=FAILED if n == fail else COMPLETED,
                                       start=0.0, end=1.0, return_value=float(n)))
    recorder.close()
    s.close()  # as finish() does: the sweep lets go of its dir


def test_plan_dry_run_and_start(tmp_path: Path) -> None:
    s = session(tmp_path, seed=7)
    plan = s.plan(FLAGS)
    assert (s.size, s.seed, s.draws) == (6, 7, True)
    text = s.dry_run(lambda n: f"#{n} {plan[n][0][1]}")
    assert text.splitlines()[0] == "Dry run: 6 job(s), strategy grid_search, seed 7"
    assert text.splitlines()[1:4] == ["#0 1", "#1 1", "#2 2"] and text.endswith("nothing launched (dry run)")
    numbers, done = s.start()
    assert (list(numbers), done) == (list(range(6)), 0)
    with pytest.raises(SweepError, match="in use by a live sweep"):
        session(tmp_path, seed=7).start()
    s.close()
    saved = yaml.safe_load((tmp_path / "sweep" / "grid_sweep.yaml").read_text())
    assert (saved["seed"], saved["jobs"], saved["flags"]) == (7, 6, ["a=[1, 2, 3]"])


def test_resume_skips_completed_keeps_the_seed_and_refuses_a_change(tmp_path: Path) -> None:
    first = session(tmp_path)
    first.plan(FLAGS)
    run_all(first, fail=4)
    again = session(tmp_path, resume=True)
    again.plan(FLAGS)
    assert again.seed == first.seed
    numbers, done = again.start()
    assert (list(numbers), done) == ([4], 5)
    again.close()
    changed = SweepSession(tmp_path / "sweep", SweepSettings(resume=True), NAMES, identity={"flags": ["a=[9]"]})
    changed.plan(FLAGS)
    with pytest.raises(SweepError, match="flag a was"):
        changed.start()
    with pytest.raises(SweepError, match="used seed .*, not --seed 1"):
        session(tmp_path, resume=True, seed=1)
    with pytest.raises(SweepError, match="no grid sweep to resume"):
        session(tmp_path / "elsewhere", resume=True)


def test_bad_settings_name_the_front_ends_option(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="--seed -1: the seed must be a non-negative int"):
        session(tmp_path, seed=-1)
    with pytest.raises(SweepError, match="--num_trials 0"):
        session(tmp_path, num_trials=0)
    with pytest.raises(SweepError, match="max_failure_rate"):
        session(tmp_path, max_failure_rate=2.0)


def test_finish_writes_the_records(tmp_path: Path) -> None:
    s = session(tmp_path, seed=3, maximize=True)
    s.plan(FLAGS)
    run_all(s, fail=0)
    summary, text = s.finish()
    assert (summary["completed"], summary["failed"]) == (5, 1)
    assert summary["best"][0]["job"] == 5  # maximize: the highest return value first
    assert "results.csv: " in text and (tmp_path / "sweep" / "summary.yaml").exists()


def test_strategy_none_is_one_job_without_a_plan(tmp_path: Path) -> None:
    s = session(tmp_path, strategy="none")
    assert s.plan(FLAGS) is None
    assert (s.size, s.seed, s.draws) == (1, None, False)
