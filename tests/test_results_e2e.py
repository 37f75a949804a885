"""Results people can use, end to end: the metric, clean columns, failure logs, calm endings.

Every test runs the test app (or the gridsweep CLI) in a subprocess, as a user does.
"""
import csv
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from sweep_helpers import APPS, run_app

APP = APPS / "sweeper" / "app.py"
SCRIPT = APPS / "cli" / "record_args.py"


def sweep(tmp_path: Path, sweep_dir: Path, *args: str, env: Any = None) -> Any:
    return run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", *args], tmp_path, env)


def rows(sweep_dir: Path) -> List[Dict[str, str]]:
    return list(csv.DictReader((sweep_dir / "results.csv").open()))


def summary(sweep_dir: Path) -> Dict[str, Any]:
    return yaml.safe_load((sweep_dir / "summary.yaml").read_text())


def gridsweep(tmp_path: Path, *args: str) -> Any:
    import subprocess

    return subprocess.run([sys.executable, "-m", "grid_sweeper.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("launcher", ["basic", "grid_local"])
def test_dict_return_ranked_by_metric_and_maximize(tmp_path: Path, launcher: str) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, f"hydra/launcher={launcher}", "alpha=[0.5,0.1,0.9]",
                 "hydra.sweeper.metric=acc", "hydra.sweeper.maximize=true", env={"RETURN_DICT": "1"})
    assert proc.returncode == 0, proc.stderr
    best = summary(sweep_dir)["best"]
    assert [(b["job"], b["metric"]) for b in best] == [(1, 0.9), (0, 0.5), (2, 0.1)]  # acc = 1 - alpha
    assert best[0]["return_value"]["loss"] == 0.1
    assert "Best jobs (highest acc):" in proc.stdout
    table = rows(sweep_dir)
    assert list(table[0]) == ["job", "flag.alpha", "status", "metric", "return.loss", "return.acc",
                              "return.val.loss", "return.note", "duration", "error", "log"]
    assert [(r["flag.alpha"], r["metric"], r["return.val.loss"]) for r in table] == [
        ("0.5", "0.5", "1.0"), ("0.1", "0.9", "0.2"), ("0.9", "0.1", "1.8")]


def test_dotted_metric_of_a_nested_dict(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "alpha=[0.5,0.1]", "hydra.sweeper.metric=val.loss", env={"RETURN_DICT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert [(b["job"], b["metric"]) for b in summary(sweep_dir)["best"]] == [(1, 0.2), (0, 1.0)]


def test_a_dict_return_without_a_metric_says_so(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "alpha=[0.5,0.1]", "hydra.sweeper.metric=f1", env={"RETURN_DICT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert summary(sweep_dir)["best"] == []
    assert "2 completed job(s) returned no number at 'f1'; keys with numbers: loss, acc, val.loss" in proc.stdout
    plain = sweep(tmp_path, tmp_path / "t", "alpha=[0.5,0.1]", env={"RETURN_DICT": "1"})
    assert "2 completed job(s) returned a dict and no metric was chosen: rank them with metric=KEY" in plain.stdout


def test_gridsweep_metric_and_maximize(tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    sweep_dir = tmp_path / "s"
    proc = gridsweep(tmp_path, "run", "--sweep_dir", str(sweep_dir), "--metric", "loss", "--maximize",
                     str(SCRIPT), "--alpha", "[0.5, 0.25]", "--beta", "[1, 2]", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert [(b["job"], b["metric"]) for b in summary(sweep_dir)["best"]] == [(1, 2.5), (3, 2.25), (0, 1.5), (2, 1.25)]
    assert "Best jobs (highest loss):" in proc.stderr
    table = rows(sweep_dir)
    assert [(r["flag.alpha"], r["flag.beta"], r["metric"], r["return.loss"]) for r in table][0] == (
        "0.5", "1", "1.5", "1.5")


def test_a_flag_named_error_has_its_own_column(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, "+error=[1,2]", "+status=[x]", "beta=[1,2]", "fail_on_beta=2")
    assert proc.returncode == 1
    header = (sweep_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header)), header  # pandas would read error.1 otherwise
    table = rows(sweep_dir)
    assert [(r["flag.error"], r["flag.beta"], r["error"]) for r in table] == [
        ("1", "1", ""), ("1", "2", "RuntimeError: beta=2 is cursed"),
        ("2", "1", ""), ("2", "2", "RuntimeError: beta=2 is cursed")]


@pytest.mark.parametrize("launcher, log_name", [("basic", "app.log"), ("grid_local", "stderr.log")])
def test_a_failed_job_keeps_its_traceback_and_the_summary_names_the_file(
    tmp_path: Path, launcher: str, log_name: str
) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, f"hydra/launcher={launcher}", "beta=[1,2]", "fail_on_beta=2")
    assert proc.returncode == 1
    failure = summary(sweep_dir)["failures"][0]
    assert Path(failure["log"]) == sweep_dir / "1" / log_name
    text = Path(failure["log"]).read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: beta=2 is cursed" in text
    assert 'raise RuntimeError(f"beta={cfg.beta} is cursed")' in text
    assert f"log: {sweep_dir / '1' / log_name}" in proc.stdout
    if launcher == "grid_local":  # the job's own log file too, with every launcher
        assert "RuntimeError: beta=2 is cursed" in (sweep_dir / "1" / "app.log").read_text()
    assert "Sweep summary" not in (sweep_dir / "1" / "app.log").read_text()  # the sweep's lines are not the job's


@pytest.mark.parametrize("launcher", ["basic", "grid_local"])
def test_the_end_names_the_files_and_no_hint_follows_failed_jobs(tmp_path: Path, launcher: str) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(tmp_path, sweep_dir, f"hydra/launcher={launcher}", "beta=[1,2]", "fail_on_beta=2")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "HYDRA_FULL_ERROR" not in output
    assert "Traceback" not in "".join(line for line in output.splitlines() if not line.startswith("[job "))
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Sweep summary: 1 completed, 1 failed of 2" in line)
    tail = lines[start:]
    csv_line = next(i for i, line in enumerate(tail) if line.startswith("results.csv: "))
    assert tail[csv_line] == f"results.csv: {sweep_dir / 'results.csv'}"
    assert tail[csv_line + 1] == f"summary.yaml: {sweep_dir / 'summary.yaml'}"
    assert "1 of 2 job(s) failed: #1" in output


def test_expected_errors_print_no_hint(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    bad = sweep(tmp_path, sweep_dir, "alpha=uniform(1,2)")  # grid_search needs a count
    assert bad.returncode == 2 and "this distribution has no count" in bad.stderr
    assert "HYDRA_FULL_ERROR" not in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
    assert sweep(tmp_path, sweep_dir, "beta=[1,2]").returncode == 0
    refused = sweep(tmp_path, sweep_dir, "beta=[1,3]", "hydra.sweeper.resume=true")
    assert refused.returncode == 2 and "resume refused" in refused.stderr
    assert "HYDRA_FULL_ERROR" not in refused.stderr + refused.stdout


def test_the_seed_is_printed_only_when_something_was_drawn(tmp_path: Path) -> None:
    plain = sweep(tmp_path, tmp_path / "a", "beta=[1,2]", "alpha=range(0,1,0.5)")
    assert plain.returncode == 0 and ", seed " not in plain.stdout + plain.stderr
    drawn = sweep(tmp_path, tmp_path / "b", "alpha=uniform(0,1,2)")
    assert drawn.returncode == 0 and "(rerun with hydra.sweeper.seed=" in drawn.stdout
    picked = sweep(tmp_path, tmp_path / "c", "beta=range(10)", "hydra.sweeper.strategy=random_search",
                   "hydra.sweeper.num_trials=3")
    assert picked.returncode == 0 and "(rerun with hydra.sweeper.seed=" in picked.stdout
    record = tmp_path / "r.jsonl"
    cli = gridsweep(tmp_path, "run", "--sweep_dir", str(tmp_path / "d"), str(SCRIPT), "--beta", "[1, 2]",
                    "--record", str(record))
    assert cli.returncode == 0 and ", seed " not in cli.stderr
    assert f"results.csv: {tmp_path / 'd' / 'results.csv'}" in cli.stderr


def test_results_jsonl_keeps_the_whole_dict(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    assert sweep(tmp_path, sweep_dir, "alpha=[0.5]", env={"RETURN_DICT": "1"}).returncode == 0
    record = json.loads((sweep_dir / "results.jsonl").read_text().splitlines()[0])
    assert record["return_value"] == {"loss": 0.5, "acc": 0.5, "val": {"loss": 1.0}, "note": "ok"}
