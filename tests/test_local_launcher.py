"""`hydra/launcher=grid_local`: Hydra's launcher suites, the launcher called directly, and sweeps
run as a user runs them (`python app.py -m hydra/launcher=grid_local ...`)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import pytest
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from process_table import wait_gone
from pytest import mark, param
from recording_listener import Recorder

from grid_sweeper.events import COMPLETED, FAILED
from grid_sweeper.launch.jobs import JobFailed
from hydra_plugins.hydra_grid_sweeper.local_launcher import GridLocalLauncher

APP_DIR = Path(__file__).resolve().parent / "apps" / "local"
APP = APP_DIR / "jobs_app.py"
TASK = APP_DIR / "jobs_task.py"
ROOT = Path(__file__).resolve().parents[1]


def _load_task() -> Any:
    spec = importlib.util.spec_from_file_location("grid_local_jobs_task", TASK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jobs_task = _load_task()


# -- Hydra's own launcher suites ----------------------------------------------------------------


def test_discovery() -> None:
    names = [x.__name__ for x in Plugins.instance().discover(Launcher)]
    assert GridLocalLauncher.__name__ in names


@mark.parametrize(
    "launcher_name, overrides",
    [
        param("grid_local", [], id="fork"),
        param("grid_local", ["hydra.launcher.start_method=spawn"], id="spawn"),
    ],
)
class TestGridLocalLauncher(LauncherTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        param(
            {},
            ["-m", "hydra/launcher=grid_local", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled"],
            id="grid_local",
        )
    ],
)
class TestGridLocalLauncherIntegration(IntegrationTestSuite):
    pass


# -- the launcher called directly (its JobReturns and events) ------------------------------------


LaunchFn = Callable[..., Sequence[JobReturn]]


@pytest.fixture
def launch(tmp_path: Path, hydra_restore_singletons: Any, monkeypatch: pytest.MonkeyPatch) -> LaunchFn:
    """Compose the app's multirun config with grid_local, then call the launcher's launch().

    `launch.composed` lists the pid of each process that composed a config with Hydra's own
    composer while launching (the launcher's process, or a job's)."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode

    def _launch(
        jobs: List[List[str]], overrides: Sequence[str] = (), listener: Any = None, validate: bool = False
    ) -> Sequence[JobReturn]:
        GlobalHydra.instance().clear()
        hydra = Hydra.create_main_hydra2(
            task_name="jobs_app",
            config_search_path=create_config_search_path(f"file://{APP_DIR / 'conf'}"),
        )
        cfg = hydra.compose_config(
            config_name="config",
            overrides=[
                "hydra/launcher=grid_local",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
                "hydra.launcher.console_output=false",
                *overrides,
            ],
            run_mode=RunMode.MULTIRUN,
        )
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg)),
            task_function=jobs_task.run,
            config=cfg,
        )
        out = f"out={tmp_path / 'records'}"  # a sweeper passes every job all task overrides
        jobs = [[*job, out] for job in jobs]
        composing = ConfigLoaderImpl._load_configuration_impl

        def recording_compose(*args: Any, **kwargs: Any) -> Any:
            with open(composed_log, "a") as f:
                f.write(f"{os.getpid()}\n")
            return composing(*args, **kwargs)

        monkeypatch.setattr(ConfigLoaderImpl, "_load_configuration_impl", recording_compose)
        if validate:  # as Hydra's BasicSweeper does before launch(): compose every job's config
            for job in jobs:
                hydra.config_loader.load_sweep_config(cfg, job)
        try:
            if listener is None:  # Hydra's contract, as any sweeper calls it
                return launcher.launch(jobs, initial_job_idx=3)
            return launcher.launch_jobs(jobs, range(3, 3 + len(jobs)), listener)  # the grid sweeper's
        finally:
            GlobalHydra.instance().clear()

    composed_log = tmp_path / "composed.txt"
    _launch.composed = lambda: [int(p) for p in composed_log.read_text().split()]  # type: ignore
    return _launch


def test_job_returns_of_successful_jobs_are_hydras(launch: LaunchFn, tmp_path: Path) -> None:
    returns = launch([["i=1"], ["i=2"]])
    assert [r.status for r in returns] == [JobStatus.COMPLETED] * 2
    assert [r.return_value for r in returns] == [{"i": 1, "square": 1}, {"i": 2, "square": 4}]
    assert [r.overrides[0] for r in returns] == ["i=1", "i=2"]
    assert returns[1].cfg.i == 2 and "hydra" not in returns[1].cfg
    assert returns[1].hydra_cfg.hydra.job.num == 4 and returns[1].task_name == "jobs_app"
    assert returns[1].hydra_cfg.hydra.runtime.output_dir == str(tmp_path / "sweep" / "4")
    job_dir = tmp_path / "sweep" / "4"
    assert (job_dir / ".hydra" / "config.yaml").exists()
    assert "job 2 starts in mode ok" in (job_dir / "stdout.log").read_text()
    assert not (tmp_path / "sweep" / ".grid_local").exists()  # pending log dir cleaned up


@pytest.mark.parametrize("validate", [False, True], ids=["launched", "validated-first"])
def test_failures_become_failed_job_returns(launch: LaunchFn, tmp_path: Path, validate: bool) -> None:
    modes = ["ok", "raise", "exit3", "exit1", "segv", "kill"]
    returns = launch([[f"mode={m}", f"i={n}"] for n, m in enumerate(modes)], validate=validate)
    # one Hydra compose in the launcher (these jobs change only values); none in the jobs
    assert launch.composed() == [os.getpid()]  # type: ignore[attr-defined]
    assert [r.status for r in returns] == [JobStatus.COMPLETED] + [JobStatus.FAILED] * 5
    errors = {m: r._return_value for m, r in zip(modes, returns) if m != "ok"}
    assert all(isinstance(e, JobFailed) for e in errors.values())
    expected = {
        "raise": "job 4 failed: ValueError: job 1 raised on purpose",
        "exit3": "job 5 failed: exited with code 3",
        "exit1": "job 6 failed: exited with code 1",
        "segv": "job 7 failed: killed by signal SIGSEGV",
        "kill": "job 8 failed: killed by signal SIGKILL",
    }
    for mode, text in expected.items():
        message = str(errors[mode])
        assert message.startswith(text), message
        num = text.split()[1]
        assert f"stderr: {tmp_path / 'sweep' / num / 'stderr.log'}" in message
    assert "raised on purpose" in str(errors["raise"]).split("last lines of stderr:")[1]
    assert isinstance(errors["raise"].__cause__, ValueError)
    crashed = returns[modes.index("segv")]  # its config made again by the launcher
    assert crashed.cfg.mode == "segv" and crashed.hydra_cfg.hydra.job.num == 7
    assert crashed.working_dir == str(tmp_path / "sweep" / "7")
    with pytest.raises(JobFailed):
        _ = crashed.return_value


def test_timeout_stops_the_job_and_its_children(launch: LaunchFn, tmp_path: Path) -> None:
    start = time.monotonic()
    returns = launch([["mode=hang"]], ["hydra.launcher.timeout_min=0.02", "hydra.launcher.kill_grace_s=1"])
    assert time.monotonic() - start < 15
    message = str(returns[0]._return_value)
    assert message.startswith("job 3 failed: timed out after 1.2 s"), message
    record = json.loads((tmp_path / "records" / "hang-0.json").read_text())
    assert wait_gone([record["pid"], record["child"]]) == []


def test_listener_events_and_stop(launch: LaunchFn, tmp_path: Path) -> None:
    listener = Recorder(accept_first=2)
    returns = launch(
        [["i=0"], ["i=1", "mode=raise"], ["i=2"], ["i=3"]], ["hydra.launcher.max_parallel=2"], listener=listener
    )
    assert [e.number for e in listener.started] == [3, 4]
    assert {e.number: e.status for e in listener.finished} == {3: COMPLETED, 4: FAILED}
    done = next(e for e in listener.finished if e.number == 3)
    assert done.return_value == {"i": 0, "square": 0}
    assert done.output_dir == str(tmp_path / "sweep" / "3")
    assert done.logs == {
        "stdout": str(tmp_path / "sweep" / "3" / "stdout.log"),
        "stderr": str(tmp_path / "sweep" / "3" / "stderr.log"),
    }
    assert done.job_id == str(json.loads((tmp_path / "records" / "ok-0.json").read_text())["pid"])
    failed = next(e for e in listener.finished if e.number == 4)
    assert failed.error == "ValueError: job 1 raised on purpose"
    for ret in returns[2:]:
        assert ret.status == JobStatus.FAILED
        assert "not started: the sweep stopped" in str(ret._return_value)


def test_env_is_resolved_per_job(launch: LaunchFn, tmp_path: Path) -> None:
    launch(
        [["i=5"], ["i=6"]],
        [
            "+hydra.launcher.env.GRID_TEST_NUM=\\${hydra:job.num}",
            "+hydra.launcher.env.GRID_TEST_I=\\${i}",
            "+hydra.launcher.env.GRID_TEST_MODE=${mode}",
            "+hydra.launcher.env.GRID_TEST_FIXED=fixed",
        ],
    )
    envs = [json.loads((tmp_path / "records" / f"ok-{i}.json").read_text())["env"] for i in (5, 6)]
    assert envs == [
        {"GRID_TEST_NUM": "3", "GRID_TEST_I": "5", "GRID_TEST_MODE": "ok", "GRID_TEST_FIXED": "fixed"},
        {"GRID_TEST_NUM": "4", "GRID_TEST_I": "6", "GRID_TEST_MODE": "ok", "GRID_TEST_FIXED": "fixed"},
    ]


# -- as a user runs it -----------------------------------------------------------------------------


def run_app(tmp_path: Path, *args: str, app: Path = APP, timeout: float = 60) -> Any:
    return subprocess.run(
        [
            sys.executable,
            str(app),
            "-m",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"out={tmp_path / 'records'}",
            "hydra/launcher=grid_local",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


def records(tmp_path: Path) -> List[Dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "records").glob("*.json"))]


def test_cli_gpu_sets_are_disjoint_and_queued_jobs_fill_free_slots(tmp_path: Path) -> None:
    proc = run_app(
        tmp_path, "i=0,1,2,3,4,5", "seconds=0.4", "hydra.launcher.gpus=[0,1,2,3]", "hydra.launcher.gpus_per_job=2"
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path)
    assert len(recs) == 6
    assert {r["gpus"] for r in recs} == {"0,1", "2,3"}
    for n, a in enumerate(recs):
        for b in recs[n + 1 :]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["gpus"] != b["gpus"], (a, b)
    assert "GPU sets: 0,1 2,3" in proc.stdout and "2 at a time" in proc.stdout
    assert "[job 5] job 5 starts in mode ok" in proc.stdout  # console echo
    for n in range(6):
        assert "starts in mode ok" in (tmp_path / "sweep" / str(n) / "stdout.log").read_text()


def test_cli_failures_are_reported_and_the_rest_run(tmp_path: Path) -> None:
    proc = run_app(
        tmp_path,
        "mode=raise,exit3,segv,ok",
        "hydra.launcher.max_parallel=2",
        "+hydra.callbacks.rec._target_=jobs_task.RecordCallback",
    )
    assert proc.returncode == 1
    marks = sorted(p.name for p in (tmp_path / "records").glob("cb-*"))  # run_job's callbacks ran
    assert marks == [
        "cb-end-0-FAILED", "cb-end-3-COMPLETED", "cb-start-0", "cb-start-1", "cb-start-2", "cb-start-3"
    ]
    assert [r["mode"] for r in records(tmp_path)] == ["ok"]
    out = proc.stdout + proc.stderr
    assert "job 0 failed: ValueError: job 0 raised on purpose" in out
    assert "job 1 failed: exited with code 3" in out
    assert "job 2 failed: killed by signal SIGSEGV" in out
    assert "raised on purpose" in (tmp_path / "sweep" / "0" / "stderr.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_cli_signal_stops_the_sweep_without_orphans(tmp_path: Path, sig: int) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(APP),
            "-m",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"out={tmp_path / 'records'}",
            "hydra/launcher=grid_local",
            "mode=hang",
            "i=0,1,2,3",
            "hydra.launcher.max_parallel=2",
            "hydra.launcher.kill_grace_s=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 20
    while len(list((tmp_path / "records").glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 128 + sig and "Traceback" not in out  # 130 / 143 / 129, with Hydra's basic sweeper too
    name = signal.Signals(sig).name
    assert f"{name} received: stopping 2 running job(s)" in out
    assert f"The sweep was interrupted by {name}: 0 of 4 job(s) completed" in out
    pids = [p for r in records(tmp_path) for p in (r["pid"], r["child"])]
    assert len(pids) == 4
    assert wait_gone(pids) == []
    assert not (tmp_path / "sweep" / "2").exists()  # never started


def test_cli_with_the_grid_sweeper(tmp_path: Path) -> None:
    proc = run_app(tmp_path, "hydra/sweeper=grid", "i=[1,2,3]")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["num"] for r in records(tmp_path)) == [1, 2, 3]


def test_cli_spawn(tmp_path: Path) -> None:
    proc = run_app(tmp_path, "i=7,8", "hydra.launcher.start_method=spawn")
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path)
    assert sorted(r["num"] for r in recs) == [7, 8]
    assert os.getpid() not in {r["pid"] for r in recs}
