"""The SLURM engine without a cluster: options, sbatch scripts, state parsing, and the watcher's
decisions against a fake controller (vanished jobs, states without result files, chunking)."""

import pickle
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from grid_sweeper.events import COMPLETED, FAILED, JobEvent
from grid_sweeper.launch.slurm import SlurmRunner, SlurmTask
from grid_sweeper.launch.slurm_options import SlurmOptions
from grid_sweeper.launch.slurm_results import (
    SlurmJobError,
    exception_line,
    not_requeued_reason,
    one_line,
    task_error,
)
from grid_sweeper.launch.slurm_script import sbatch_flags, sbatch_script
from grid_sweeper.launch.slurm_state import (
    JobState,
    SlurmClient,
    parse_scontrol_job,
    parse_squeue,
)

# -- options and scripts ----------------------------------------------------------------------


def test_options_reject_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown SLURM option"):
        SlurmOptions.from_mapping({"partitoin": "gpu"})
    with pytest.raises(ValueError, match="array_parallelism"):
        SlurmOptions(array_parallelism=0)
    with pytest.raises(ValueError, match="single line"):
        SlurmOptions(comment="a\n#SBATCH --partition=other")
    with pytest.raises(ValueError, match="invalid sbatch option name"):
        SlurmOptions(additional_parameters={"x y": 1})
    opts = SlurmOptions.from_mapping({"setup": None, "additional_parameters": None})
    assert opts.setup == [] and opts.additional_parameters == {}


def test_script_flags_array_throttle_and_resources(tmp_path: Path) -> None:
    opts = SlurmOptions(
        folder=f"{tmp_path}/%j",
        name="app",
        partition="gpu",
        gpus_per_node=1,
        mem_gb=1.5,
        timeout_min=7,
        signal_delay_s=30,
        additional_parameters={"mail_type": "END", "exclusive": True},
    )
    flags = sbatch_flags(opts, count=10, throttle=3)
    assert flags["array"] == "0-9%3"
    assert flags["partition"] == "gpu" and flags["gpus-per-node"] == 1
    assert flags["mem"] == "1536M" and flags["time"] == 7
    assert flags["signal"] == "USR2@30"
    assert flags["output"] == f"{tmp_path}/%A_%a/%A_%a_0_log.out"
    assert flags["mail-type"] == "END" and flags["exclusive"] is True
    assert "requeue" not in flags
    assert sbatch_flags(SlurmOptions(max_num_timeout=2), 1, 1)["requeue"] is True
    script = sbatch_script(opts, 10, 3)
    assert "#SBATCH --exclusive\n" in script
    assert "srun --unbuffered --output" in script
    assert f"-u -m grid_sweeper.launch.slurm_submit {tmp_path}/%j" in script


def test_script_without_srun_forwards_the_signal_and_keeps_the_exit_code() -> None:
    opts = SlurmOptions(use_srun=False, setup=["module load x"], teardown=["echo bye"], python="/opt/py/bin/python")
    script = sbatch_script(opts, 2, 2)
    assert "#SBATCH --signal=B:USR2@120" in script
    assert "srun" not in script
    assert "/opt/py/bin/python -u -m grid_sweeper.launch.slurm_submit" in script
    assert "trap 'kill -s USR2" in script
    assert script.index("module load x") < script.index("grid_sweeper.launch.slurm_submit")
    assert script.index("echo bye") < script.index("exit $_grid_rc")


def test_script_srun_args_and_stderr_to_stdout() -> None:
    opts = SlurmOptions(srun_args=["--cpu-bind", "none"], stderr_to_stdout=True)
    script = sbatch_script(opts, 1, 1)
    assert "--cpu-bind none" in script
    assert "--error" not in script and "#SBATCH --error" not in script


# -- parsing Slurm's answers ------------------------------------------------------------------


def test_parse_squeue_states_and_exit_codes() -> None:
    text = (
        "12_0|COMPLETED|None|0|2024-05-01T12:00:00|\n"
        "12_1|FAILED|NonZeroExitCode|768|2024-05-01T12:00:01|\n"
        "12_2|CANCELLED|None|15|N/A|\n"
        "12_3|PENDING|JobArrayTaskLimit|0|N/A|\n"
    )
    states = parse_squeue(text)
    assert states["12_0"].state == "COMPLETED" and states["12_0"].start_time is not None
    assert states["12_1"].describe() == "FAILED (reason NonZeroExitCode, exit 3)"
    assert states["12_2"].describe() == "CANCELLED (signal 15)"
    assert states["12_3"].active and not states["12_3"].started
    assert states["12_2"].start_time is None


def test_parse_scontrol_job_line() -> None:
    line = (
        "JobId=10 ArrayJobId=7 ArrayTaskId=2 JobName=x JobState=CANCELLED Reason=None "
        "ExitCode=0:15 StartTime=2024-05-01T12:00:00"
    )
    state = parse_scontrol_job(line)
    assert state == JobState("7_2", "CANCELLED", "None", "signal 15", state.start_time)
    assert parse_scontrol_job("JobId=3 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:0").job_id == "3"


def test_max_array_size_from_scontrol_show_config(monkeypatch: pytest.MonkeyPatch) -> None:
    client = SlurmClient()
    out = "Configuration data as of x\nMaxArraySize            = 16\nMaxJobCount = 10000\n"
    monkeypatch.setattr(client, "run", lambda argv: _Result(0, out, ""))
    assert client.max_array_size() == 16
    monkeypatch.setattr(client, "run", lambda argv: _Result(1, "", "no controller"))
    assert client.max_array_size() == 1001


def test_sacct_is_asked_once_when_accounting_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[List[str]] = []

    def run(argv: List[str]) -> "_Result":
        calls.append(argv)
        return _Result(1, "", "Slurm accounting storage is disabled")

    client = SlurmClient()
    monkeypatch.setattr(client, "run", run)
    assert client.accounting_state("1_0") is None
    assert client.accounting_state("1_1") is None
    assert len(calls) == 1


# -- error messages ---------------------------------------------------------------------------


def test_task_error_names_the_exception_and_the_logs() -> None:
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: bad value\n'
    err = task_error("5_1", trace, {"stdout": "/l/5_1_0_log.out", "stderr": "/l/5_1_0_log.err"})
    assert one_line(err) == "ValueError: bad value"
    assert "/l/5_1_0_log.err" in str(err) and "5_1" in str(err)
    assert pickle.loads(pickle.dumps(err)).job_id == "5_1"


def test_task_error_of_a_time_limit_and_of_a_bare_exception() -> None:
    trace = (
        "Traceback...\nsubmitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.\n"
    )
    assert not_requeued_reason(trace) == "timed-out too many times"
    err = task_error("5_2", trace, {"stdout": "/l/o"})
    assert isinstance(err, SlurmJobError) and err.state == "TIMEOUT"
    assert "time limit (TIMEOUT)" in str(err)
    chained = (
        "subprocess.CalledProcessError: Command 'x' returned non-zero exit status 3.\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n  File ...\nsubmitit.core.utils.FailedJobError\n"
    )
    assert exception_line(chained).startswith("submitit.core.utils.FailedJobError (from ")


# -- the watcher against a fake controller ----------------------------------------------------


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    @property
    def transient_failure(self) -> bool:
        return False


class FakeClient(SlurmClient):
    """A controller that accepts arrays and answers states from a script of our own."""

    def __init__(self, max_array: int = 16) -> None:
        super().__init__()
        self.max_array = max_array
        self.submitted: List[str] = []
        self.states: Dict[str, JobState] = {}
        self.cancelled: List[str] = []
        self.next_id = 100

    def max_array_size(self, default: int = 1001) -> int:
        return self.max_array

    def sbatch(self, script: str) -> str:
        self.sbatch_calls += 1
        self.submitted.append(Path(script).read_text())
        self.next_id += 1
        return str(self.next_id)

    def queue_states(self, array_ids):  # type: ignore[no-untyped-def]
        return {k: v for k, v in self.states.items() if k.split("_")[0] in set(array_ids)}

    def job_state(self, job_id: str) -> Optional[JobState]:
        return None

    def accounting_state(self, job_id: str) -> Optional[JobState]:
        return None

    def cancel(self, job_ids) -> bool:  # type: ignore[no-untyped-def]
        self.cancelled.extend(job_ids)
        return True

    def set_array_throttle(self, array_id: str, throttle: int) -> bool:
        return True


class Recorder:
    def __init__(self, accept: int = 10**9) -> None:
        self.events: List[JobEvent] = []
        self.accept = accept

    def job_started(self, event: JobEvent) -> None:
        self.events.append(event)

    def job_finished(self, event: JobEvent) -> None:
        self.events.append(event)

    def accepting_new_jobs(self) -> bool:
        self.accept -= 1
        return self.accept >= 0


def _options(tmp_path: Path, **kw) -> SlurmOptions:  # type: ignore[no-untyped-def]
    base = dict(folder=f"{tmp_path}/%j", poll_interval_s=0.05, result_grace_s=0.2, vanished_grace_s=0.3)
    base.update(kw)
    return SlurmOptions(**base)


def test_states_without_result_files_become_failures(tmp_path: Path) -> None:
    client = FakeClient()
    client.states = {
        "101_0": JobState("101_0", "CANCELLED", "None", "signal 15"),
        "101_1": JobState("101_1", "OUT_OF_MEMORY", "OutOfMemory", ""),
        "101_2": JobState("101_2", "COMPLETED", "None", ""),  # but no result file
    }  # 101_3 is unknown to the controller: vanished
    recorder = Recorder()
    runner = SlurmRunner(_options(tmp_path), recorder, client)
    start = time.monotonic()
    results = runner.run([SlurmTask(fn=print, number=i) for i in range(4)])
    assert time.monotonic() - start < 10
    assert [r.state for r in results] == ["CANCELLED", "OUT_OF_MEMORY", "COMPLETED", "VANISHED"]
    assert all(not r.ok and isinstance(r.error, SlurmJobError) for r in results)
    assert "ended CANCELLED (signal 15) without a result" in str(results[0].error)
    assert f"{tmp_path}/101_0/101_0_0_log.out" in str(results[0].error)
    assert "VANISHED" in str(results[3].error)
    finished = [e for e in recorder.events if e.status == FAILED]
    assert sorted(e.job_id for e in finished) == ["101_0", "101_1", "101_2", "101_3"]
    assert len(client.submitted) == 1 and "#SBATCH --array=0-3%4" in client.submitted[0]


def test_result_files_are_read_as_they_appear(tmp_path: Path) -> None:
    from submitit.core.utils import JobPaths, cloudpickle_dump

    client = FakeClient()
    for k, outcome in enumerate([("success", 42), ("error", "Traceback\nKeyError: 'x'\n")]):
        job_id = f"101_{k}"
        client.states[job_id] = JobState(job_id, "RUNNING")
        path = JobPaths(f"{tmp_path}/%j", job_id=job_id).result_pickle
        path.parent.mkdir(parents=True)
        cloudpickle_dump(outcome, path)
    recorder = Recorder()
    results = SlurmRunner(_options(tmp_path), recorder, client).run(
        [SlurmTask(fn=print, number=7, overrides=["a=1"]), SlurmTask(fn=print, number=8)]
    )
    assert results[0].ok and results[0].value == 42 and results[0].state == "COMPLETED"
    assert not results[1].ok and one_line(results[1].error) == "KeyError: 'x'"
    kinds = [(e.number, e.status) for e in recorder.events]
    assert kinds.count((7, COMPLETED)) == 1 and kinds.count((8, FAILED)) == 1
    assert recorder.events[0].status == "running"  # started is sent before finished


def test_chunks_follow_max_array_size_and_the_listener(tmp_path: Path) -> None:
    client = FakeClient(max_array=3)
    recorder = Recorder(accept=2)  # two arrays, then the sweep stops accepting
    results = SlurmRunner(_options(tmp_path), recorder, client).run([SlurmTask(fn=print, number=i) for i in range(8)])
    assert len(client.submitted) == 2
    assert [r.state for r in results[6:]] == ["NOT_SUBMITTED", "NOT_SUBMITTED"]
    assert "not submitted" in str(results[7].error)
    assert [r.job_id for r in results[:6]] == ["101_0", "101_1", "101_2", "102_0", "102_1", "102_2"]


def test_interrupt_cancels_submitted_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient()
    client.states = {"101_0": JobState("101_0", "RUNNING")}
    runner = SlurmRunner(_options(tmp_path), None, client)
    calls = {"n": 0}

    def sleep(_: float) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    with pytest.raises(KeyboardInterrupt):
        runner.run([SlurmTask(fn=print)])
    assert client.cancelled == ["101"]


def test_pending_jobs_are_cancelled_once_the_sweep_refuses_new_jobs(tmp_path: Path) -> None:
    client = FakeClient()
    client.states = {"101_0": JobState("101_0", "PENDING"), "101_1": JobState("101_1", "PENDING")}
    recorder = Recorder(accept=1)  # the first array goes out, then the guard says stop
    results = SlurmRunner(_options(tmp_path), recorder, client).run([SlurmTask(fn=print, number=i) for i in range(2)])
    assert sorted(client.cancelled) == ["101_0", "101_1"]
    assert [r.state for r in results] == ["NOT_STARTED", "NOT_STARTED"]
    assert str(results[0].error) == "not started: the sweep stopped accepting new jobs"
    assert recorder.events == []
