"""The local process pool (`grid_sweeper.launch.local`), without Hydra."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Dict

import pytest
from process_table import wait_gone
from recording_listener import Recorder

from grid_sweeper.events import COMPLETED, FAILED, RUNNING, JobEvent
from grid_sweeper.launch import gpus as gpus_mod
from grid_sweeper.launch import local as local_mod
from grid_sweeper.launch.child import relocate_output
from grid_sweeper.launch.console import ConsoleEcho, shorten
from grid_sweeper.launch.gpus import GpuPool, detect_gpus, gpu_sets, parse_visible_devices
from grid_sweeper.launch.local import JobFailed, JobSpec, LocalPool

ROOT = Path(__file__).resolve().parents[1]


# -- job bodies (module level, so that spawned children can import them) ------------------------


def square(i: int) -> int:
    print(f"python says {i}")
    os.write(1, f"fd1 says {i}\n".encode())
    os.system(f"echo shell says {i}; echo shell err {i} >&2")
    return i * i


def record(path: str, sleep: float, value: Any = None) -> Any:
    """Write pid, CUDA_VISIBLE_DEVICES and start/end times to `path`, sleeping in between."""
    start = time.time()
    time.sleep(sleep)
    with open(path, "w") as f:
        json.dump(
            {
                "pid": os.getpid(),
                "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "start": start,
                "end": time.time(),
                "extra": os.environ.get("EXTRA"),
            },
            f,
        )
    return value


def raise_error() -> None:
    print("about to fail", file=sys.stderr)
    raise ValueError("bad value 42")


def exit_3() -> None:
    sys.exit(3)


def exit_hard() -> None:
    os._exit(1)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_long() -> None:
    time.sleep(60)


def ignore_term() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def unpicklable() -> Any:
    return threading.Lock()


def returns_lambda() -> Any:
    return lambda x: x + 1


MARKER = "parent-at-import"


def read_marker() -> str:
    return MARKER


def spec(tmp: Path, number: int, target: Any, **kw: Any) -> JobSpec:
    return JobSpec(number=number, target=target, output_dir=str(tmp / str(number)), **kw)


def read(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text())


# -- results and logs ---------------------------------------------------------------------------


def test_values_come_back_in_order_and_output_lands_in_log_files(tmp_path: Path) -> None:
    results = LocalPool(max_parallel=2).run([spec(tmp_path, i, partial(square, i)) for i in range(4)])
    assert [r.status for r in results] == [COMPLETED] * 4
    assert [r.value for r in results] == [0, 1, 4, 9]
    out = (tmp_path / "3" / "stdout.log").read_text()
    assert "python says 3" in out and "fd1 says 3" in out and "shell says 3" in out
    assert "shell err 3" in (tmp_path / "3" / "stderr.log").read_text()
    assert len({r.pid for r in results}) == 4 and os.getpid() not in {r.pid for r in results}


def test_each_failure_kind_is_a_failed_result_and_the_others_finish(tmp_path: Path) -> None:
    bodies = [raise_error, exit_3, exit_hard, segfault, sigkill, partial(square, 5)]
    results = LocalPool(max_parallel=3).run([spec(tmp_path, i, b) for i, b in enumerate(bodies)])
    errors = [r.error for r in results]
    assert errors[0] == "ValueError: bad value 42"
    assert isinstance(results[0].exception, ValueError)
    assert errors[1] == "exited with code 3"
    assert errors[2] == "exited with code 1"
    assert errors[3].startswith("killed by signal SIGSEGV")
    assert errors[4].startswith("killed by signal SIGKILL") and "out-of-memory" in errors[4]
    assert [r.status for r in results] == [FAILED] * 5 + [COMPLETED]
    assert results[5].value == 25
    message = results[0].describe()
    assert "bad value 42" in message and "about to fail" in message
    assert str(tmp_path / "0" / "stderr.log") in message
    assert "Segmentation fault" in (tmp_path / "3" / "stderr.log").read_text()  # faulthandler


def test_timeout_stops_a_job_and_sigkill_follows_an_ignored_sigterm(tmp_path: Path) -> None:
    pool = LocalPool(max_parallel=3, timeout_s=0.5, kill_grace_s=0.5)
    start = time.monotonic()
    results = pool.run(
        [spec(tmp_path, 0, sleep_long), spec(tmp_path, 1, ignore_term), spec(tmp_path, 2, partial(square, 2))]
    )
    assert time.monotonic() - start < 10
    assert results[0].error == "timed out after 0.5 s" and results[0].timed_out
    assert results[0].returncode == -signal.SIGTERM
    assert results[1].error == "timed out after 0.5 s" and results[1].returncode == -signal.SIGKILL
    assert results[2].status == COMPLETED


def test_unpicklable_values(tmp_path: Path) -> None:
    results = LocalPool().run([spec(tmp_path, 0, unpicklable), spec(tmp_path, 1, returns_lambda)])
    assert results[0].status == FAILED and "cannot be pickled" in results[0].error
    assert results[1].status == COMPLETED and results[1].value(1) == 2  # via cloudpickle


def test_argv_commands(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    script = "import os, sys; print(os.getcwd(), os.environ['EXTRA']); sys.exit(int(sys.argv[1]))"
    specs = [
        JobSpec(
            number=i,
            argv=[sys.executable, "-c", script, str(code)],
            output_dir=str(tmp_path / str(i)),
            cwd=str(tmp_path / "w"),
            env={"EXTRA": "e"},
        )
        for i, code in enumerate([0, 4])
    ]
    results = LocalPool().run(specs)
    assert results[0].status == COMPLETED and results[0].returncode == 0
    assert results[1].status == FAILED and results[1].error == "exited with code 4"
    assert (tmp_path / "0" / "stdout.log").read_text() == f"{tmp_path / 'w'} e\n"
    with pytest.raises(TypeError):
        JobSpec(number=0, argv="echo hi", output_dir=str(tmp_path))  # type: ignore[arg-type]


# -- scheduling ---------------------------------------------------------------------------------


def test_gpu_sets_are_disjoint_among_concurrent_jobs(tmp_path: Path) -> None:
    pool = LocalPool(gpus=["a", "b", "c", "d", "e"], gpus_per_job=2, env={"EXTRA": "x"})
    assert pool.gpu_sets == [("a", "b"), ("c", "d")] and pool.max_parallel == 2
    files = [tmp_path / f"{i}.json" for i in range(6)]
    pool.run([spec(tmp_path, i, partial(record, str(f), 0.3)) for i, f in enumerate(files)])
    recs = [read(f) for f in files]
    assert {r["gpus"] for r in recs} == {"a,b", "c,d"}
    assert {r["extra"] for r in recs} == {"x"}
    for i, a in enumerate(recs):
        for b in recs[i + 1 :]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["gpus"] != b["gpus"], (a, b)


def test_no_gpus_leaves_cuda_visible_devices_alone(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    LocalPool(max_parallel=1).run([spec(tmp_path, 0, partial(record, str(tmp_path / "r"), 0))])
    assert read(tmp_path / "r")["gpus"] == "7"


def test_queued_jobs_start_as_soon_as_a_slot_frees(tmp_path: Path) -> None:
    sleeps = [1.2, 0.1, 0.1, 0.1, 0.1]
    files = [tmp_path / f"{i}.json" for i in range(len(sleeps))]
    LocalPool(max_parallel=2).run(
        [spec(tmp_path, i, partial(record, str(f), s)) for i, (f, s) in enumerate(zip(files, sleeps))]
    )
    recs = [read(f) for f in files]
    assert recs[4]["end"] < recs[0]["end"]  # the short jobs did not wait for the long one
    events = sorted([(r["start"], 1) for r in recs] + [(r["end"], -1) for r in recs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


class AheadJob:
    """A `Preparable` job: `prepare` runs in the launcher (it counts and times each call), the
    job reports what it inherited, then waits until the next job has been prepared."""

    def __init__(self, marker: Path, wait_for: Any = None, fail: bool = False) -> None:
        self.marker, self.wait_for, self.fail = marker, wait_for, fail
        self.prepared_in: Any = None
        self.prepared_at = 0.0
        self.prepare_calls = 0
        self.forgotten = 0

    def prepare(self) -> None:
        self.prepare_calls += 1
        self.prepared_at = time.time()
        self.marker.write_text(str(os.getpid()))
        if self.fail:
            raise RuntimeError("no advance work today")
        self.prepared_in = os.getpid()

    def forget(self) -> None:
        self.prepared_in = None
        self.forgotten += 1

    def __call__(self) -> Any:
        inherited = self.prepared_in
        if self.wait_for is not None:
            wait_for_file(str(self.wait_for))
        return {"prepared_in": inherited, "pid": os.getpid()}


def wait_for_file(path: str, timeout: float = 30.0) -> str:
    """Run until the launcher has prepared the next job (it must, while this job runs)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return "seen"


def test_the_next_jobs_are_prepared_in_the_launcher_while_it_waits(tmp_path: Path) -> None:
    """One slot: while a job runs, the pool prepares the next queued job (only that one: a slot's
    worth ahead); each forked job inherits what was prepared, and the launcher drops its copy
    once the job has forked. A job whose preparation fails does it itself."""
    marks = [tmp_path / f"prepared-{i}" for i in range(4)]
    jobs = [AheadJob(marks[1], wait_for=marks[2]), AheadJob(marks[2], wait_for=marks[3]),
            AheadJob(marks[3], fail=True)]
    results = LocalPool(max_parallel=1).run(
        [spec(tmp_path, 0, partial(wait_for_file, str(marks[1])))]
        + [spec(tmp_path, i + 1, job) for i, job in enumerate(jobs)])
    assert [r.status for r in results] == [COMPLETED] * 4, [r.error for r in results]
    for result in results[1:3]:
        assert result.value["prepared_in"] == os.getpid() != result.value["pid"]
    assert results[3].value["prepared_in"] is None  # its preparation failed: it ran anyway
    assert [j.prepare_calls for j in jobs] == [1, 1, 1]  # once each, a failure not retried
    assert [j.forgotten for j in jobs] == [1, 1, 1] and jobs[0].prepared_in is None
    for job, before in zip(jobs, results):  # prepared once the job ahead of it had started
        assert job.prepared_at >= before.start


def test_jobs_are_not_prepared_with_spawn(tmp_path: Path) -> None:
    marker = tmp_path / "prepared"
    job = AheadJob(marker)
    results = LocalPool(max_parallel=1, start_method="spawn").run([
        spec(tmp_path, 0, partial(time.sleep, 0.3)), spec(tmp_path, 1, job)])
    assert [r.status for r in results] == [COMPLETED] * 2
    assert results[1].value["prepared_in"] is None and not marker.exists()


def test_listener_events_and_accepting_new_jobs(tmp_path: Path) -> None:
    listener = Recorder(accept_first=2)
    specs = [
        spec(tmp_path, 10 + i, partial(record, str(tmp_path / f"{i}.json"), s, i), overrides=[f"x={i}"])
        for i, s in enumerate([0.6, 0.0, 0.0, 0.0])
    ]
    specs[1] = spec(tmp_path, 11, raise_error, overrides=["x=1"])
    results = LocalPool(max_parallel=2, listener=listener).run(specs)
    assert [e.number for e in listener.started] == [10, 11]
    assert all(e.status == RUNNING for e in listener.started)
    assert [e.job_id for e in listener.started] == [str(results[0].pid), str(results[1].pid)]
    by_number = {e.number: e for e in listener.finished}
    assert set(by_number) == {10, 11}
    assert by_number[10].status == COMPLETED and by_number[10].return_value == 0
    assert by_number[11].status == FAILED and by_number[11].error == "ValueError: bad value 42"
    assert by_number[11].logs == {
        "stderr": str(tmp_path / "11" / "stderr.log"),
        "stdout": str(tmp_path / "11" / "stdout.log"),
    }
    assert by_number[11].output_dir == str(tmp_path / "11")
    assert by_number[11].overrides == ["x=1"]
    # reported the moment it ended, not when the slow job ended
    assert by_number[11].end_seen < read(tmp_path / "0.json")["end"]
    for r in results[2:]:
        assert not r.started and r.status == FAILED and r.error.startswith("not started")


def test_a_listener_that_raises_does_not_stop_the_sweep(tmp_path: Path) -> None:
    class Broken(Recorder):
        def job_finished(self, event: JobEvent) -> None:
            raise RuntimeError("listener bug")

    results = LocalPool(listener=Broken()).run([spec(tmp_path, 0, partial(square, 3))])
    assert results[0].value == 9


# -- start methods ------------------------------------------------------------------------------


def test_spawn_runs_in_a_fresh_interpreter(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(sys.modules[__name__], "MARKER", "changed-in-parent")
    forked = LocalPool(start_method="fork").run([spec(tmp_path, 0, read_marker)])
    spawned = LocalPool(start_method="spawn").run([spec(tmp_path, 1, read_marker), spec(tmp_path, 2, exit_3)])
    assert forked[0].value == "changed-in-parent"
    assert spawned[0].value == "parent-at-import"
    assert spawned[1].error == "exited with code 3"


def test_unsafe_fork_falls_back_to_spawn(tmp_path: Path, monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.setattr(sys.modules[__name__], "MARKER", "changed-in-parent")
    monkeypatch.setattr(local_mod, "fork_unsafe_reason", lambda: "CUDA is initialised (test)")
    with caplog.at_level(logging.WARNING):
        results = LocalPool().run([spec(tmp_path, 0, read_marker)])
    assert results[0].value == "parent-at-import"
    assert "CUDA is initialised (test)" in caplog.text and "spawn" in caplog.text


def test_relocate_output_moves_logs_into_the_real_output_dir(tmp_path: Path) -> None:
    def job() -> str:
        print("before")
        relocate_output(str(tmp_path / "real"))
        print("after")
        return "ok"

    listener = Recorder()
    results = LocalPool(listener=listener).run(
        [
            JobSpec(
                number=0,
                target=job,
                stdout=str(tmp_path / "pending" / "o.log"),
                stderr=str(tmp_path / "pending" / "e.log"),
            )
        ]
    )
    assert (tmp_path / "real" / "stdout.log").read_text() == "before\nafter\n"
    assert not (tmp_path / "pending" / "o.log").exists()
    assert results[0].logs["stdout"] == str(tmp_path / "real" / "stdout.log")
    assert listener.finished[0].output_dir == str(tmp_path / "real")
    assert relocate_output(str(tmp_path / "x")) == ("", "")  # outside a job: nothing happens


def test_console_echo_prefixes_and_shortens(tmp_path: Path) -> None:
    stream = io.StringIO()
    pool = LocalPool(console_output=True, console_width=20)
    pool.console.stream = stream  # type: ignore[union-attr]
    pool.run([spec(tmp_path, 7, partial(square, 2))])
    lines = stream.getvalue().splitlines()
    assert "[job 7] python says 2" in lines
    assert "[job 7] shell err 2" in lines
    assert shorten("x" * 30, 20) == "x" * 17 + "..."
    assert shorten("10%\r50%\r100%\n", 20) == "100%"
    echo = ConsoleEcho(stream=stream)
    echo.add(1, "job 1", [str(tmp_path / "missing.log")])
    echo.poll()
    echo.finish(1)


# -- stopping on signals (in a subprocess, as the user's sweep process) ---------------------------

POOL_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    from functools import partial
    from grid_sweeper.launch.local import Interrupted, JobSpec, LocalPool

    out = sys.argv[1]

    def job(i):
        child = subprocess.Popen(["sleep", "60"])
        with open(os.path.join(out, f"pids{i}"), "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        if i == 0:
            return "done"
        time.sleep(60)

    specs = [JobSpec(number=i, target=partial(job, i), output_dir=os.path.join(out, str(i)))
             for i in range(5)]
    try:
        LocalPool(max_parallel=3, kill_grace_s=1.0).run(specs)
    except Interrupted as e:
        print("STATUS", [r.status for r in e.results], [r.started for r in e.results])
        print("ERRORS", [r.error for r in e.results])
        sys.exit(130)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_job_and_leaves_no_process(tmp_path: Path, sig: int) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 15
    while len(list(tmp_path.glob("pids*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "STATUS ['completed', 'failed', 'failed', 'failed', 'failed'] [True, True, True, True, False]" in out
    assert f"stopped: the sweep was interrupted ({signal.Signals(sig).name})" in out
    assert "not started: the sweep was interrupted" in out
    pids = [int(p) for f in tmp_path.glob("pids*") for p in f.read_text().split()]
    assert len(pids) == 8  # jobs 0-3 and their `sleep` children
    assert wait_gone(pids) == []


# -- GPUs ---------------------------------------------------------------------------------------


def test_parse_visible_devices() -> None:
    assert parse_visible_devices("0,1, 3") == ["0", "1", "3"]
    assert parse_visible_devices("") == []
    assert parse_visible_devices("2,-1,3") == ["2"]
    assert parse_visible_devices("GPU-abc,GPU-def") == ["GPU-abc", "GPU-def"]


def test_gpu_sets_and_errors() -> None:
    assert gpu_sets(["0", "1", "2"], 2) == [("0", "1")]
    assert gpu_sets(["0", "1"], 0) == []
    with pytest.raises(ValueError, match="only 1 GPU"):
        gpu_sets(["0"], 2)
    with pytest.raises(ValueError, match="distinct"):
        gpu_sets(["0", "0"], 1)
    with pytest.raises(ValueError, match="only 0 GPU"):
        LocalPool(gpus=[], gpus_per_job=1)
    pool = GpuPool([("0",), ("1",)])
    first = pool.acquire()
    with pytest.raises(RuntimeError):
        pool.release(("1",))
    pool.release(first)


def test_max_parallel_is_capped_by_gpu_sets(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING):
        assert LocalPool(gpus=["0", "1"], gpus_per_job=1, max_parallel=8).max_parallel == 2
    assert "capped" in caplog.text
    assert LocalPool(max_parallel=3).max_parallel == 3
    assert LocalPool().max_parallel == local_mod.cpu_count()
    with pytest.raises(ValueError):
        LocalPool(max_parallel=0)
    with pytest.raises(ValueError):
        LocalPool(start_method="thread")


def test_detect_gpus_from_env_then_nvidia_smi(tmp_path: Path, monkeypatch: Any) -> None:
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "1,2"}) == ["1", "2"]
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-1)'\necho 'GPU 1: Fake (UUID: GPU-2)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpus({}) == ["0", "1"]
    monkeypatch.setattr(gpus_mod.shutil, "which", lambda name: None)
    assert detect_gpus({}) == []


def test_job_failed_pickles_with_its_message() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(JobFailed("job 1 failed: boom")))
    assert isinstance(err, JobFailed) and str(err) == "job 1 failed: boom"


def test_jobs_die_with_a_killed_launcher(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=ROOT)
    deadline = time.monotonic() + 15
    while len(list(tmp_path.glob("pids*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.kill()  # no chance to clean up: the kernel's parent-death signal does it
    proc.wait()
    pairs = [[int(p) for p in f.read_text().split()] for f in tmp_path.glob("pids*")]
    try:
        assert wait_gone([job for job, _ in pairs]) == []
    finally:  # the jobs' own children are not the launcher's to kill here
        for _, child in pairs:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
