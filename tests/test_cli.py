"""gridsweep end to end: the CLI in a subprocess with a small argparse script, as a user runs it."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

SCRIPT = Path(__file__).parent / "apps" / "cli" / "record_args.py"
SHELL_SCRIPT = Path(__file__).parent / "apps" / "cli" / "train.sh"


def gridsweep(tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grid_sweeper.cli", "run", *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})},
    )


def received(record: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def dry_run_jobs(output: str) -> List[List[str]]:
    return [shlex.split(line.split(" : ", 1)[1]) for line in output.splitlines() if re.match(r"#\d+ : ", line)]


def flag_values(argvs: List[List[str]], flag: str) -> List[str]:
    return [argv[argv.index(flag) + 1] for argv in argvs]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[32, 64, 128]", ["32", "64", "128"]),
        ("['resnet18', 'transformer', 'resnet50']", ["resnet18", "transformer", "resnet50"]),
        ("['resnet18' 'transformer', 'resnet50']", ["resnet18", "transformer", "resnet50"]),
        ("[[1, 2], [3, 4]]", ["[1, 2]", "[3, 4]"]),
        ("range(1, 10, 2)", ["1", "3", "5", "7", "9"]),
        ("range(3)", ["0", "1", "2"]),
        ("range(10, 0, -3)", ["10", "7", "4", "1"]),
        ("32", ["32"]),
        ("1e-2", ["1e-2"]),
        ("'bert'", ["bert"]),
        ("True", ["True"]),
    ],
)
def test_grid_syntax_job_lists(tmp_path: Path, text: str, expected: List[str]) -> None:
    proc = gridsweep(tmp_path, "--dry-run", str(SCRIPT), "--name", text, "--record", "r")
    assert proc.returncode == 0, proc.stderr
    jobs = dry_run_jobs(proc.stdout)
    assert flag_values(jobs, "--name") == expected
    assert all(job[:2] == [sys.executable, str(SCRIPT)] for job in jobs)


def test_distribution_grid_order_and_values_read_back(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--seed", "4", "--sweep_dir", "s", str(SCRIPT), "--alpha", "uniform(1e-5, 1e-1, 3)",
                     "--beta", "[1, 2, 3, 4]", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    got = sorted(received(record), key=lambda r: (r["argv"].index("--alpha"), r["argv"]))
    assert len(got) == 12
    table = [json.loads(line) for line in (tmp_path / "s" / "results.jsonl").read_text().splitlines()]
    by_job = {r["job"]: r for r in table}
    assert [by_job[n]["overrides"][1] for n in range(12)] == [f"beta={b}" for b in [1, 2, 3, 4] * 3]
    alphas = [float(by_job[n]["overrides"][0].split("=")[1]) for n in range(12)]
    assert len(set(alphas)) == 3 and alphas == [a for a in dict.fromkeys(alphas) for _ in range(4)]
    # the script's own parser reads back exactly the swept number
    texts = {r["argv"][r["argv"].index("--alpha") + 1] for r in got}
    assert {float(t) for t in texts} == set(alphas) and all("np." not in t for t in texts)
    # a number on the last stdout line is the job's return value
    assert by_job[0]["return_value"] == {"loss": alphas[0] + 1}


def test_equals_form_toggles_and_plain_values_reach_the_script_as_typed(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--sweep_dir", "s", str(SCRIPT), "--beta=[1, 2]", "--verbose", "--alpha", "1e-2",
                     "--name", "'bert'", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    got = sorted(received(record), key=lambda r: r["beta"])
    assert [r["beta"] for r in got] == [1, 2]
    assert got[0]["argv"] == ["--beta=1", "--verbose", "--alpha", "1e-2", "--name", "bert", "--record", str(record)]
    assert all(r["verbose"] for r in got)
    dry = gridsweep(tmp_path, "--dry-run", str(SCRIPT), "--beta=[1, 2]", "--verbose", "--record", "r")
    assert "toggles passed through unchanged (never swept): --verbose" in dry.stdout


@pytest.mark.parametrize("value", ["$(touch pwned)", "`touch pwned`", "a b; touch pwned", "it's \"quoted\""])
def test_injection_looking_values_arrive_as_text(tmp_path: Path, value: str) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--sweep_dir", "s", str(SCRIPT), "--cmd", value, "--beta", "[1, 2]",
                     "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert [r["cmd"] for r in received(record)] == [value, value]
    assert not (tmp_path / "pwned").exists()


def test_failure_of_one_job_does_not_stop_the_others(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--sweep_dir", "s", "--max_parallel", "1", str(SCRIPT), "--beta", "range(1, 5)",
                     "--fail_on_beta", "2", "--record", str(record))
    assert proc.returncode == 1
    assert sorted(r["beta"] for r in received(record)) == [1, 2, 3, 4]
    table = {r["job"]: r for r in map(json.loads, (tmp_path / "s" / "results.jsonl").read_text().splitlines())}
    assert [table[n]["status"] for n in range(4)] == ["completed", "failed", "completed", "completed"]
    assert table[1]["error"] == "exited with code 3: beta=2 is cursed"
    job_dir = tmp_path / "s" / "1"
    assert (job_dir / "exit_code").read_text().strip() == "3"
    assert "beta=2 is cursed" in (job_dir / "stderr.log").read_text()
    assert shlex.split((job_dir / "command.txt").read_text())[-4:] == ["--fail_on_beta", "2", "--record", str(record)]
    assert "Sweep summary: 3 completed, 1 failed of 4" in proc.stderr


def test_metric_number_summary_and_any_executable(tmp_path: Path) -> None:
    (tmp_path / "args").mkdir()
    proc = gridsweep(tmp_path, "--sweep_dir", "s", str(SHELL_SCRIPT), "--lr", "[0.1, 0.01]", "positional",
                     env={"RECORD_DIR": str(tmp_path / "args")})
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.read_text().splitlines() for p in (tmp_path / "args").iterdir())
    assert runs == [["--lr", "0.01", "positional"], ["--lr", "0.1", "positional"]]
    table = [json.loads(line) for line in (tmp_path / "s" / "results.jsonl").read_text().splitlines()]
    assert [r["return_value"] for r in table] == [0.5, 0.5]
    assert "Best jobs (lowest return value):" in proc.stderr


def test_random_search_and_strategy_none(tmp_path: Path) -> None:
    proc = gridsweep(tmp_path, "--dry-run", "--strategy", "random_search", "--num_trials", "3", "--seed", "1",
                     str(SCRIPT), "--alpha", "uniform(1e-5, 1e-1)", "--beta", "range(100)", "--record", "r")
    jobs = dry_run_jobs(proc.stdout)
    assert len(jobs) == 3 and len(set(flag_values(jobs, "--alpha"))) == 3
    assert "3 job(s), strategy random_search, seed 1" in proc.stdout
    proc = gridsweep(tmp_path, "--dry-run", "--strategy", "none", str(SCRIPT), "--alpha", "uniform(1e-5, 1e-1, 3)",
                     "--record", "r")
    assert dry_run_jobs(proc.stdout) == [[sys.executable, str(SCRIPT), "--alpha", "uniform(1e-5, 1e-1, 3)",
                                          "--record", "r"]]


def test_bad_expression_is_one_clear_error(tmp_path: Path) -> None:
    proc = gridsweep(tmp_path, str(SCRIPT), "--alpha", "unifrom(1e-5, 1e-1, 3)", "--record", "r")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "flag 'alpha': unknown function 'unifrom'" in proc.stderr and "did you mean 'uniform'" in proc.stderr
    assert not list(tmp_path.glob("gridsweep_runs/*"))


def test_resume_skips_completed_jobs(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    args = ["--sweep_dir", "s", str(SCRIPT), "--beta", "range(1, 4)", "--fail_on_beta", "2", "--record", str(record)]
    assert gridsweep(tmp_path, *args).returncode == 1
    proc = gridsweep(tmp_path, "--resume", *args)
    assert proc.returncode == 1  # beta=2 still fails, but only it ran again
    assert sorted(r["beta"] for r in received(record)) == [1, 2, 2, 3]
    changed = gridsweep(tmp_path, "--resume", "--sweep_dir", "s", str(SCRIPT), "--beta", "range(1, 5)",
                        "--fail_on_beta", "2", "--record", str(record))
    assert changed.returncode == 2 and "flag beta was 'range(1, 4)', now 'range(1, 5)'" in changed.stderr


def test_help_documents_the_options(tmp_path: Path) -> None:
    proc = gridsweep(tmp_path, "--help")
    for option in ["--strategy", "--num_trials", "--seed", "--dry-run", "--launcher", "--max_parallel", "--gpus",
                   "--gpus_per_job", "--partition", "--gpus_per_node", "--timeout_min", "--sweep_dir", "--resume"]:
        assert option in proc.stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "gridsweep"
    proc = subprocess.run([str(executable), "run", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--strategy" in proc.stdout


def test_slurm_launcher_runs_each_command_on_the_cluster(tmp_path: Path, slurm_env: Any) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--launcher", "slurm", "--partition", "gpu", "--gpus_per_node", "1",
                     "--timeout_min", "5", "--sweep_dir", "s", str(SCRIPT), "--beta", "[1, 2, 3]",
                     "--fail_on_beta", "2", "--record", str(record))
    assert proc.returncode == 1, proc.stderr
    got = sorted(received(record), key=lambda r: r["beta"])
    assert [r["beta"] for r in got] == [1, 2, 3]
    assert all(r["slurm_job"] for r in got)  # each ran as a Slurm job
    assert all(r["gpus"] is not None and len(r["gpus"].split(",")) == 1 for r in got)
    table = {r["job"]: r for r in map(json.loads, (tmp_path / "s" / "results.jsonl").read_text().splitlines())}
    assert [table[n]["status"] for n in range(3)] == ["completed", "failed", "completed"]
    assert table[0]["return_value"] == {"loss": 1.0}
    assert re.fullmatch(r"\d+_\d+", table[0]["job_id"])
    job_dir = tmp_path / "s" / "1"  # command line, logs (linked from submitit's folder) and exit code at hand
    assert "--beta 2" in (job_dir / "command.txt").read_text()
    assert "beta=2 is cursed" in (job_dir / "stderr.log").read_text()
    assert (tmp_path / "s" / "0" / "exit_code").read_text() == "0\n"
    assert "Sweep summary: 2 completed, 1 failed of 3" in proc.stderr


def test_slurm_detach_then_wait_collects_what_each_job_recorded_on_its_node(tmp_path: Path, slurm_env: Any) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--launcher", "slurm", "--detach", "--sweep_dir", "s", str(SCRIPT),
                     "--beta", "[1, 2, 3]", "--fail_on_beta", "2", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert "gridsweep: detached: 3 job(s) submitted (Slurm arrays" in proc.stderr
    assert "gridsweep wait s" in proc.stderr
    waited = subprocess.run([sys.executable, "-m", "grid_sweeper.cli", "wait", "s"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert waited.returncode == 1, waited.stderr  # one job failed
    assert "Sweep summary: 2 completed, 1 failed of 3" in waited.stderr
    assert sorted(r["beta"] for r in received(record)) == [1, 2, 3]  # each ran once
    own = {int(p.stem): json.loads(p.read_text()) for p in (tmp_path / "s" / ".grid_sweep" / "records").glob("*.json")}
    assert own[0]["return_value"] == {"loss": 1.0} and re.fullmatch(r"\d+_0", own[0]["job_id"])
    assert own[1]["status"] == "failed" and own[1]["error"] == "exited with code 3: beta=2 is cursed"
    table = {r["job"]: r for r in map(json.loads, (tmp_path / "s" / "results.jsonl").read_text().splitlines())}
    assert table == own


def test_slurm_pack_detach_then_wait(tmp_path: Path, slurm_env: Any) -> None:
    record = tmp_path / "rec.jsonl"
    proc = gridsweep(tmp_path, "--launcher", "slurm", "--pack", "--workers", "1", "--partition", "gpu",
                     "--gpus_per_node", "4", "--gpus_per_job", "2", "--detach", "--sweep_dir", "s", str(SCRIPT),
                     "--beta", "[1, 2, 3, 4, 5]", "--fail_on_beta", "2", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert "detached: 5 job(s) submitted (packed workers, Slurm arrays" in proc.stderr
    waited = subprocess.run([sys.executable, "-m", "grid_sweeper.cli", "wait", "s"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert waited.returncode == 1, waited.stderr
    assert "Sweep summary: 4 completed, 1 failed of 5" in waited.stderr
    got = received(record)
    assert sorted(r["beta"] for r in got) == [1, 2, 3, 4, 5]
    assert len({r["slurm_job"] for r in got}) == 1  # one allocation ran them all
    assert all(len(r["gpus"].split(",")) == 2 for r in got)
    own = {int(p.stem): json.loads(p.read_text()) for p in (tmp_path / "s" / ".grid_sweep" / "records").glob("*.json")}
    assert own[0]["return_value"] == {"loss": 1.0} and own[1]["error"] == "exited with code 3: beta=2 is cursed"
    assert Path(own[0]["logs"]["stdout"]) == tmp_path / "s" / "0" / "stdout.log"


def test_hydra_style_key_value_flags(tmp_path: Path) -> None:
    proc = gridsweep(tmp_path, "--dry-run", str(SCRIPT), "lr=[0.1, 0.01]", "+extra=range(2)", "plain", "--record", "r")
    assert proc.returncode == 0, proc.stderr
    jobs = dry_run_jobs(proc.stdout)
    assert [job[2:4] for job in jobs] == [["lr=0.1", "+extra=0"], ["lr=0.1", "+extra=1"],
                                          ["lr=0.01", "+extra=0"], ["lr=0.01", "+extra=1"]]
    assert all(job[4:] == ["plain", "--record", "r"] for job in jobs)
