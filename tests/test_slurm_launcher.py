"""`hydra/launcher=grid_slurm` end to end on the test Slurm cluster: sweeps run as a user runs
them (a subprocess), plus hydra-core's launcher suites in-process."""

import functools
import json
import operator
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

APP = Path(__file__).parent / "apps" / "slurm" / "app.py"
FAST = ["hydra.launcher.poll_interval_s=0.5"]


def _command(sweep_dir: Path, args: List[str]) -> List[str]:
    return [sys.executable, str(APP), "-m", "hydra/launcher=grid_slurm", f"hydra.sweep.dir={sweep_dir}", *FAST, *args]


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def sweep(tmp_path: Path, *args: str, timeout: float = 180) -> Tuple[subprocess.CompletedProcess, Path]:
    """Runs the test app's multirun on the cluster of SLURM_CONF; returns (process, sweep dir)."""
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        _command(sweep_dir, list(args)), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    return proc, sweep_dir


def received(sweep_dir: Path) -> Dict[int, Dict[str, Any]]:
    """Job number -> what the job recorded (jobs that completed their task)."""
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/received.json")}


def submissions(sweep_dir: Path) -> List[Path]:
    """One sbatch script per sbatch call."""
    return sorted(sweep_dir.glob(".submitit/*_submission.sh"))


def max_overlap(records: List[Dict[str, Any]]) -> int:
    """Most jobs whose task ran at the same time."""
    edges = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def wait_for(path: Path, timeout: float, proc: "subprocess.Popen[str]") -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended before {path} appeared:\n{proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.2)


def failure_lines(output: str) -> Dict[int, str]:
    """Job number -> the launcher's `#n <id> failed: ...` log line."""
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"#(\d+) \S+ failed: .*", output)}


# -- sweeps -----------------------------------------------------------------------------------


def test_each_job_is_an_array_element_with_its_logs_at_hand(slurm_env, tmp_path: Path) -> None:
    proc, sweep_dir = sweep(
        tmp_path,
        "a=1,2,3",
        "hydra.launcher.setup=['export GRID_SETUP=yes']",
        "hydra.launcher.teardown=['echo teardown-ran']",
        f"hydra.launcher.python={sys.executable}",
        "hydra.launcher.srun_args=['--cpu-bind=none']",
    )
    assert proc.returncode == 0, proc.stderr
    jobs = received(sweep_dir)
    assert sorted(jobs) == [0, 1, 2] and [jobs[i]["a"] for i in range(3)] == [1, 2, 3]
    (script,) = submissions(sweep_dir)
    array_id = script.name.split("_")[0]
    slurm_env.wait_job(array_id, timeout=30)  # results come back before the teardown lines run
    assert "#SBATCH --array=0-2%3" in script.read_text()
    assert f"--cpu-bind=none {sys.executable} -u -m grid_sweeper.launch.slurm_submit" in script.read_text()
    for num, job in jobs.items():
        assert job["job_id"] == f"{array_id}_{num}" and job["num"] == num
        assert job["env"]["GRID_SETUP"] == "yes"
        out_link = sweep_dir / str(num) / f"slurm-{job['job_id']}.out"
        assert out_link.is_symlink() and "teardown-ran" in out_link.read_text()
        assert (sweep_dir / str(num) / f"slurm-{job['job_id']}.err").exists()
        assert f"#{num} {job['job_id']} : a={job['a']} -> " in proc.stderr + proc.stdout
    assert "sacct" not in proc.stderr + proc.stdout


def test_gpu_partition_jobs_see_distinct_gpus(slurm_env, tmp_path: Path) -> None:
    proc, sweep_dir = sweep(
        tmp_path, "a=1,2,3,4", "sleep_s=3", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1"
    )
    assert proc.returncode == 0, proc.stderr
    jobs = list(received(sweep_dir).values())
    assert len(jobs) == 4
    for job in jobs:
        assert job["env"]["SLURM_JOB_PARTITION"] == "gpu"
        assert re.fullmatch(r"\d+", job["env"]["CUDA_VISIBLE_DEVICES"] or "")
    for one in jobs:
        for other in jobs:
            overlap = one["start"] < other["end"] and other["start"] < one["end"]
            if one is not other and overlap:
                assert one["env"]["CUDA_VISIBLE_DEVICES"] != other["env"]["CUDA_VISIBLE_DEVICES"]


def test_array_parallelism_throttles_one_array(slurm_env, tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "a=range(1,7)", "sleep_s=2", "hydra.launcher.array_parallelism=2")
    assert proc.returncode == 0, proc.stderr
    jobs = list(received(sweep_dir).values())
    assert len(jobs) == 6
    assert max_overlap(jobs) <= 2
    (script,) = submissions(sweep_dir)
    assert "#SBATCH --array=0-5%2" in script.read_text()


def test_arrays_larger_than_max_array_size_are_split(slurm_env, tmp_path: Path) -> None:
    size = slurm_env.max_array_size
    proc, sweep_dir = sweep(
        tmp_path,
        f"a=range(0,{size + 4})",
        "sleep_s=1",
        "hydra.launcher.array_parallelism=4",
        "hydra.launcher.cpus_per_task=1",
    )
    assert proc.returncode == 0, proc.stderr
    jobs = received(sweep_dir)
    assert sorted(jobs) == list(range(size + 4))
    first, second = submissions(sweep_dir)
    assert f"--array=0-{size - 1}%4" in first.read_text()
    assert re.search(r"--array=0-3%[1-4]\n", second.read_text())
    arrays = {job["job_id"].split("_")[0] for job in jobs.values()}
    assert len(arrays) == 2
    assert max_overlap(list(jobs.values())) <= 4  # the parallelism holds across both arrays


def test_engine_runs_callables_and_commands_with_events(slurm_env, tmp_path: Path) -> None:
    from grid_sweeper.launch.slurm import SlurmOptions, SlurmRunner, SlurmTask, command_task

    class Recorder:
        def __init__(self) -> None:
            self.events: List[Any] = []

        def job_started(self, event: Any) -> None:
            self.events.append(("started", event))

        def job_finished(self, event: Any) -> None:
            self.events.append(("finished", event))

        def accepting_new_jobs(self) -> bool:
            return True

    tasks = [
        SlurmTask(functools.partial(operator.mul, 6, 7), number=10, overrides=["x=1"]),
        SlurmTask(functools.partial(operator.truediv, 1, 0), number=11),
        command_task(["sh", "-c", "echo to-the-log; exit 3"], number=12),
    ]
    recorder = Recorder()
    options = SlurmOptions(folder=str(tmp_path / "jobs" / "%j"), poll_interval_s=0.5, timeout_min=5)
    results = SlurmRunner(options, recorder).run(tasks)
    assert results[0].ok and results[0].value == 42
    assert "ZeroDivisionError" in results[1].one_line_error
    assert "exit status 3" in results[2].one_line_error
    assert "to-the-log" in Path(results[2].logs["stdout"]).read_text()
    for number in (10, 11, 12):
        kinds = [kind for kind, event in recorder.events if event.number == number]
        assert kinds == ["started", "finished"]
    finished = {e.number: e for kind, e in recorder.events if kind == "finished"}
    assert finished[10].status == "completed" and finished[10].return_value == 42
    assert finished[11].status == "failed" and finished[11].error.startswith("ZeroDivisionError")
    assert re.fullmatch(r"\d+_0", finished[10].job_id)
    assert Path(finished[11].logs["stderr"]).exists()


def _failures_sweep(tmp_path: Path, cancel_num: int, args: List[str]) -> Tuple[str, Path, float]:
    """Runs a sweep in which job `cancel_num` is scancel-ed once it runs; returns its output."""
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        _command(sweep_dir, args), cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        started = sweep_dir / str(cancel_num) / "started.json"
        wait_for(started, 60, proc)
        job_id = json.loads(started.read_text())["job_id"]
        subprocess.run(["scancel", job_id], check=True, env=_env())
        cancelled_at = time.time()
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return output, sweep_dir, cancelled_at


@pytest.mark.slow
def test_failed_cancelled_and_timed_out_jobs_are_reported_while_others_succeed(slurm_env, tmp_path: Path) -> None:
    # a=3 is cancelled, a=4 gets the checkpoint signal and is not requeued, a=5 ignores it and
    # is killed by Slurm at the time limit; the batch shell forwards the signal (use_srun=false)
    output, sweep_dir, cancelled_at = _failures_sweep(
        tmp_path,
        2,
        [
            "a=1,2,3,4,5,6",
            "fail=[2]",
            "slow=[3,4,5]",
            "slow_s=300",
            "ignore_signals=[3,5]",
            "hydra.launcher.timeout_min=2",  # the checkpoint signal 20 s in: a loaded machine starts
            "hydra.launcher.signal_delay_s=100",  # the fast jobs' interpreters before it comes
            "hydra.launcher.use_srun=false",
        ],
    )
    jobs = received(sweep_dir)
    assert sorted(jobs) == [0, 5], output
    lines = failure_lines(output)
    assert sorted(lines) == [1, 2, 3, 4], output
    assert "ValueError: task failed on purpose for a=2" in lines[1]
    assert re.search(r"ended CANCELLED .*without a result; logs: stdout \S+_log\.out", lines[2])
    assert "reached its time limit (TIMEOUT) and was not requeued" in lines[3]
    assert re.search(r"ended TIMEOUT .*without a result", lines[4])
    assert "sacct" not in output
    cancelled_id = json.loads((sweep_dir / "2" / "started.json").read_text())["job_id"]
    assert (sweep_dir / "2" / f"slurm-{cancelled_id}.out").is_symlink()
    stamp = re.search(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]\[HYDRA\] #2 \S+ failed", output)
    assert stamp, output
    reported_at = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
    assert reported_at - cancelled_at < 15  # while a=4 and a=5 still run


def test_failures_with_accounting(slurm_accounting_env, tmp_path: Path) -> None:
    output, sweep_dir, _ = _failures_sweep(
        tmp_path, 2, ["a=1,2,3", "fail=[2]", "slow=[3]", "slow_s=300", "ignore_signals=[3]"]
    )
    assert sorted(received(sweep_dir)) == [0], output
    lines = failure_lines(output)
    assert sorted(lines) == [1, 2], output
    assert "ValueError: task failed on purpose for a=2" in lines[1]
    assert "ended CANCELLED" in lines[2]


def test_grid_sweeper_records_each_slurm_job(slurm_env, tmp_path: Path) -> None:
    output, sweep_dir, _ = _failures_sweep(
        tmp_path,
        2,
        ["hydra/sweeper=grid", "a=[1,2,3]", "fail=[[2]]", "slow=[[3]]", "slow_s=300", "ignore_signals=[[3]]"],
    )
    records = {r["job"]: r for r in map(json.loads, (sweep_dir / "results.jsonl").read_text().splitlines())}
    assert [records[n]["status"] for n in range(3)] == ["completed", "failed", "failed"], output
    assert records[0]["return_value"] == 2.0
    assert records[1]["error"] == "ValueError: task failed on purpose for a=2"
    assert "ended CANCELLED" in records[2]["error"]
    for number, record in records.items():
        assert re.fullmatch(r"\d+_\d", record["job_id"])
        assert record["output_dir"] == str(sweep_dir / str(number))
        assert Path(record["logs"]["stderr"]).name == f"{record['job_id']}_0_log.err"
    assert "2 of 3 job(s) failed" in output, output


def _interrupted(tmp_path: Path, sweep_dir: Path, args: List[str], signum: int) -> Tuple[int, str]:
    """Start a sweep, send `signum` once its first job runs; its exit code and output."""
    proc = subprocess.Popen(
        _command(sweep_dir, args), cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(sweep_dir / "0" / "started.json", 60, proc)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, output


def test_failure_guard_cancels_pending_array_elements(slurm_env, tmp_path: Path) -> None:
    proc, sweep_dir = sweep(tmp_path, "hydra/sweeper=grid", "a=[1,2,3,4,5,6]",
                            "fail=[[1,2,3,4,5,6]]", "hydra.sweeper.max_failure_rate=0.2",
                            "hydra.launcher.array_parallelism=1")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"stopped accepting new jobs: cancelled [1-4] pending Slurm job", output)
    ran = len(list(sweep_dir.glob("*/started.json")))
    assert ran < 6 and len(received(sweep_dir)) == 0
    (script,) = submissions(sweep_dir)
    states = slurm_env.wait_job(script.name.split("_")[0], timeout=30)
    assert "CANCELLED" in states.values()


def test_ctrl_c_cancels_the_submitted_jobs(slurm_env, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    code, output = _interrupted(tmp_path, sweep_dir, ["a=1,2,3", "slow=[1,2,3]", "slow_s=300"], signal.SIGINT)
    assert code == 130 and "Traceback" not in output  # Hydra's basic sweeper here
    assert re.search(r"Interrupted: cancelled 3 unfinished Slurm job\(s\) \(scancel \d+\)", output)
    (script,) = submissions(sweep_dir)
    states = slurm_env.wait_job(script.name.split("_")[0], timeout=30)
    assert states and all(state == "CANCELLED" for state in states.values()), states


@pytest.mark.slow
def test_time_limit_requeues_through_the_checkpoint(slurm_env, tmp_path: Path) -> None:
    with slurm_env.releasing_held_back():  # a requeued job waits ~2 min (BeginTime) unless released
        proc, sweep_dir = sweep(
            tmp_path,
            "a=7",
            "requeue_once=true",
            "hydra.launcher.timeout_min=2",
            "hydra.launcher.signal_delay_s=115",
            "hydra.launcher.max_num_timeout=1",
            timeout=240,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (job,) = received(sweep_dir).values()
    assert job["env"]["SLURM_RESTART_COUNT"] == "1"
    assert len((sweep_dir / "0" / "runs.txt").read_text().splitlines()) == 2
    assert "#SBATCH --requeue" in submissions(sweep_dir)[0].read_text()


# -- hydra-core's suites ----------------------------------------------------------------------


@pytest.mark.parametrize("launcher_name, overrides", [("grid_slurm", FAST)])
class TestGridSlurmLauncherSuite(LauncherTestSuite):
    """hydra-core's launcher suite, every job an element of a Slurm array."""

    @pytest.fixture(autouse=True)
    def _cluster(self, slurm_env: Any) -> None:
        return None


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "grid_slurm"}, "_self_"]}, ["-m", *FAST])],
)
class TestGridSlurmIntegrationSuite(IntegrationTestSuite):
    """hydra-core's integration suite: apps run in subprocesses, jobs on Slurm."""

    @pytest.fixture(autouse=True)
    def _cluster(self, slurm_env: Any) -> None:
        return None
