"""One job's config error is one failed job, whatever the launcher: the others run and are recorded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sweep_helpers import APPS, run_app

APP = APPS / "lists" / "app.py"  # criterion: an Enum of gini, entropy


@pytest.mark.parametrize("launcher", ["basic", "grid_local"])
def test_a_later_jobs_config_error_fails_only_that_job(tmp_path: Path, launcher: str) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra/launcher={launcher}",
                         "criterion=[gini,entropy,log_loss]", "beta=[1,2]", f"hydra.sweep.dir={sweep_dir}"],
                   cwd=tmp_path)
    assert proc.returncode != 0
    ran = {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/received.json")}
    assert sorted(ran) == [0, 1, 2, 3]
    assert [(ran[n]["criterion"], ran[n]["beta"]) for n in range(4)] == [
        ("gini", 1), ("gini", 2), ("entropy", 1), ("entropy", 2)]
    records = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    failed = sorted(r["job"] for r in records if r["status"] == "failed")
    assert failed == [4, 5] and len(records) == 6
    assert all("Invalid value 'log_loss'" in r["error"] for r in records if r["status"] == "failed")
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["failed"]) == (4, 2)
    assert "Traceback" not in proc.stderr


def test_every_job_failing_its_config_is_one_error_up_front(tmp_path: Path) -> None:
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", "criterion=[log_loss,mse]", f"hydra.sweep.dir={tmp_path}/s"],
                   cwd=tmp_path)
    assert proc.returncode != 0
    assert "Invalid value 'log_loss'" in proc.stderr
    assert not list((tmp_path / "s").glob("*/received.json"))


def test_a_later_batch_whose_jobs_all_fail_is_recorded_not_raised(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", "hydra.sweeper.max_batch_size=1",
                         "criterion=[gini,log_loss,entropy]", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert sorted(int(p.parent.name) for p in sweep_dir.glob("*/received.json")) == [0, 2]
    summary = yaml.safe_load((sweep_dir / "summary.yaml").read_text())
    assert (summary["completed"], summary["failed"], summary["not_run"]) == (2, 1, 0)


def test_a_definition_refused_up_front_leaves_the_dir_free(tmp_path: Path) -> None:
    """No job composes: nothing is claimed, so the corrected command runs in the same dir."""
    sweep_dir = tmp_path / "s"
    bad = run_app(APP, ["-m", "hydra/sweeper=grid", "criterion=[log_loss,mse]", f"hydra.sweep.dir={sweep_dir}"],
                  cwd=tmp_path)
    assert bad.returncode != 0 and not (sweep_dir / "grid_sweep.yaml").exists()
    good = run_app(APP, ["-m", "hydra/sweeper=grid", "criterion=[gini,entropy]", f"hydra.sweep.dir={sweep_dir}"],
                   cwd=tmp_path)
    assert good.returncode == 0, good.stderr
