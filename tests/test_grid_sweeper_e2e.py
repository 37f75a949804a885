"""hydra/sweeper=grid end to end: the test app run in a subprocess, as a user runs it."""
import re
from pathlib import Path
from typing import Any, List

import pytest
import yaml
from sweep_helpers import APPS, job_dirs, jobs, run_app

APP = APPS / "sweeper" / "app.py"


def sweep(tmp_path: Path, *args: str, env: Any = None) -> Any:
    sweep_dir = tmp_path / "sweep"
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", *args], tmp_path, env)
    return proc, sweep_dir


def values(found: List[Any], key: str) -> List[Any]:
    return [job["received"][key] for job in found]


def test_issue_example_gives_12_jobs_in_grid_order(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "alpha=uniform(1e-5,1e-1,3)", "beta=[1, 2, 3, 4]", "hydra.sweeper.seed=3")
    assert proc.returncode == 0, proc.stderr
    found = jobs(sweep_dir)
    assert len(found) == 12
    alphas = values(found, "alpha")
    assert values(found, "beta") == [1, 2, 3, 4] * 3
    distinct = list(dict.fromkeys(alphas))
    assert len(distinct) == 3 and alphas == [a for a in distinct for _ in range(4)]
    assert all(1e-5 <= a < 1e-1 and isinstance(a, float) for a in alphas)
    assert [j["received"]["job_num"] for j in found] == list(range(12))
    assert found[5]["overrides"] == [f"alpha={alphas[5]}", "beta=2"]
    assert (sweep_dir / "multirun.yaml").exists()


def test_seed_is_printed_saved_and_reproduces_the_job_list(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "alpha=normal(0, 1, 2)", "name=[a, b]")
    assert proc.returncode == 0, proc.stderr
    seed = re.search(r"hydra\.sweeper\.seed=(\d+)", proc.stderr + proc.stdout).group(1)
    assert yaml.safe_load((sweep_dir / "grid_sweep.yaml").read_text())["seed"] == int(seed)
    first = [j["overrides"] for j in jobs(sweep_dir)]
    again = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={tmp_path / 'again'}",
                          "alpha=normal(0, 1, 2)", "name=[a, b]", f"hydra.sweeper.seed={seed}"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert [j["overrides"] for j in jobs(tmp_path / "again")] == first


@pytest.mark.parametrize(
    "args, key, expected",
    [
        (["beta=range(1,10,2)"], "beta", [1, 3, 5, 7, 9]),
        (["beta=[1,2]"], "beta", [1, 2]),
        (["+extra=[1,2]"], "extra", [1, 2]),
        (["+extra=['resnet18' 'transformer', 'resnet50']"], "extra", ["resnet18", "transformer", "resnet50"]),
        (["+extra=[[1, 2], [3, 4]]"], "extra", [[1, 2], [3, 4]]),
        (["name=['1', 'True', 'a b']"], "name", ["1", "True", "a b"]),
        (["beta=choice(4,5)"], "beta", [4, 5]),
        (["beta=range(3)"], "beta", [0, 1, 2]),
        (["beta=7,8"], "beta", [7, 8]),
        (["flag=true,false"], "flag", [True, False]),
    ],
)
def test_sweep_forms(tmp_path: Path, args: List[str], key: str, expected: List[Any]) -> None:
    proc, sweep_dir = sweep(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert values(jobs(sweep_dir), key) == expected


def test_list_on_typed_field_and_config_group_sweep(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "db=mysql,postgresql", "beta=[10, 20]", "alpha=0.25")
    assert proc.returncode == 0, proc.stderr
    found = jobs(sweep_dir)
    assert [(j["received"]["db"]["driver"], j["received"]["beta"]) for j in found] == [
        ("mysql", 10), ("mysql", 20), ("postgresql", 10), ("postgresql", 20)]
    assert all(j["received"]["alpha"] == 0.25 for j in found)


def test_glob_over_a_config_group(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "db=glob(*)")
    assert proc.returncode == 0, proc.stderr
    assert [j["received"]["db"]["driver"] for j in jobs(sweep_dir)] == ["mysql", "postgresql"]


def test_random_search_from_command_line(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "hydra.sweeper.strategy=random_search", "hydra.sweeper.num_trials=3",
                            "hydra.sweeper.seed=1", "alpha=uniform(0,1)", "beta=range(100)")
    assert proc.returncode == 0, proc.stderr
    found = jobs(sweep_dir)
    assert len(found) == 3
    assert len(set(values(found, "alpha"))) == 3  # a fresh draw per trial
    assert len(set(values(found, "beta"))) == 3


def test_sweeper_chosen_and_configured_in_the_app_config(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = run_app(APP, ["-m", f"hydra.sweep.dir={sweep_dir}"], tmp_path, {"APP_CONFIG": "with_defaults"})
    assert proc.returncode == 0, proc.stderr
    found = jobs(sweep_dir)
    assert len(found) == 3  # random_search, num_trials=3 of the 12 params combinations
    assert set(values(found, "beta")) <= {1, 2, 3}
    combos = [(j["received"]["alpha"], j["received"]["beta"]) for j in found]
    assert len(set(combos)) == 3
    # a command-line flag replaces the param of the same name
    proc = run_app(APP, ["-m", f"hydra.sweep.dir={tmp_path / 't'}", "beta=[7]"], tmp_path,
                   {"APP_CONFIG": "with_defaults"})
    assert proc.returncode == 0, proc.stderr
    assert set(values(jobs(tmp_path / "t"), "beta")) == {7}


def test_strategy_none_hands_sweeps_over_as_literal_text(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "hydra.sweeper.strategy=none", "name=uniform(1e-5,1e-1,3)",
                            "+grid=[1, 2]", "beta=3", "alpha=1e-2")
    assert proc.returncode == 0, proc.stderr
    (job,) = jobs(sweep_dir)
    assert job["received"]["name"] == "uniform(1e-5,1e-1,3)"
    assert job["received"]["grid"] == "[1, 2]"
    assert job["received"]["beta"] == 3 and job["received"]["alpha"] == 0.01


def test_dry_run_prints_jobs_and_launches_nothing(tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "hydra.sweeper.dry_run=true", "hydra.sweeper.seed=9",
                            "alpha=uniform(0,1,2)", "beta=[1,2,3]")
    assert proc.returncode == 0, proc.stderr
    lines = re.findall(r"#(\d+) : alpha=(\S+) beta=(\d)", proc.stdout)
    assert [int(n) for n, _, _ in lines] == list(range(6))
    assert [b for _, _, b in lines] == ["1", "2", "3"] * 2
    assert "6 job(s), strategy grid_search, seed 9" in proc.stdout
    assert not sweep_dir.exists() or not job_dirs(sweep_dir)
    # the real sweep with the same seed runs exactly the printed jobs
    proc, sweep_dir = sweep(tmp_path, "hydra.sweeper.seed=9", "alpha=uniform(0,1,2)", "beta=[1,2,3]")
    assert proc.returncode == 0, proc.stderr
    assert [(str(j["received"]["alpha"]), str(j["received"]["beta"])) for j in jobs(sweep_dir)] == [
        (a, b) for _, a, b in lines]


def test_batches_keep_numbers_and_failures_do_not_stop_later_batches(tmp_path: Path) -> None:
    record = tmp_path / "events.txt"
    proc, sweep_dir = sweep(
        tmp_path, "hydra.sweeper.max_batch_size=2", "beta=[1,2,3,4,5]", "fail_on_beta=2",
        "+hydra.callbacks.rec._target_=callbacks.RecordingCallback", f"+hydra.callbacks.rec.path={record}")
    assert proc.returncode != 0
    found = jobs(sweep_dir)
    assert [j["received"]["job_num"] for j in found] == [0, 1, 2, 3, 4]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "1 of 5 job(s) failed: #1 " in output
    assert "Sweep summary: 4 completed, 1 failed of 5" in output
    assert re.search(r"#1 beta=2 fail_on_beta=2: RuntimeError: beta=2 is cursed", output)
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output
    events = record.read_text().split("\n")
    assert events[0] == "multirun_start" and events[-2] == "multirun_end"
    assert events.count("job_start") == 5
    assert events.count("job_end COMPLETED") == 4 and events.count("job_end FAILED") == 1


@pytest.mark.parametrize(
    "value, problem, caret_under",
    [
        ("unifrom(1e-5,1e-1,3)", "unknown function 'unifrom'", "unifrom"),
        ("normal(0,-1,3)", "invalid parameters for normal(0, -1, 3): numpy says scale < 0", "normal(0,-1,3)"),
        ("uniform(0,1,0)", "the count must be a positive int", "0"),
        ("[1,2", "unbalanced '['", "["),
    ],
)
def test_bad_expression_is_one_clear_error(tmp_path: Path, value: str, problem: str, caret_under: str) -> None:
    proc, sweep_dir = sweep(tmp_path, f"alpha={value}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"flag 'alpha': {problem}" in proc.stderr
    lines = proc.stderr.splitlines()
    text_line = next(i for i, line in enumerate(lines) if line.strip() == value)
    caret = lines[text_line + 1]
    start = caret.index("^")
    assert lines[text_line][start:start + len(caret.strip())] == caret_under
    assert not sweep_dir.exists() or not job_dirs(sweep_dir)


def test_grid_search_with_countless_distribution_says_how_to_fix(tmp_path: Path) -> None:
    proc, _ = sweep(tmp_path, "alpha=uniform(0,1)")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "add the number of values" in proc.stderr and "random_search" in proc.stderr


def test_other_sweeper_selected_behaves_as_before(tmp_path: Path) -> None:
    base = ["-m", f"hydra.sweep.dir={tmp_path / 'b'}"]
    proc = run_app(APP, [*base, "beta=1,2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert values(jobs(tmp_path / "b"), "beta") == [1, 2]
    # a list on a typed int field still fails in Hydra's own way with the basic sweeper
    proc = run_app(APP, [*base, "beta=[1,2]"], tmp_path)
    assert proc.returncode != 0 and "beta" in proc.stderr
    proc = run_app(APP, [*base, "alpha=uniform(0,1,3)"], tmp_path)
    assert proc.returncode != 0 and "hydra/sweeper=grid" in proc.stderr
