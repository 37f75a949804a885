"""A calm console, end to end: what a terminal shows, and how Ctrl-C and SIGTERM end a sweep."""
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from sweep_helpers import APPS

APP = APPS / "sweeper" / "app.py"


def screen(raw: str) -> List[str]:
    """The lines a terminal shows for `raw` (carriage return, erase-line and newline understood)."""
    lines: List[str] = []
    line: List[str] = []
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[2K", i):
            line, i = [" "] * len(line), i + 4
            continue
        if raw.startswith("\x1b[", i):  # any other control sequence: skip it
            end = i + 2
            while end < len(raw) and not raw[end].isalpha():
                end += 1
            i = end + 1
            continue
        char = raw[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
        i += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


def run_in_terminal(args: List[str], cwd: Path, env: Dict[str, str], timeout: float = 120) -> tuple:
    """Run a command with a pseudo-terminal as stdin, stdout and stderr; (exit code, raw output)."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update({"COLUMNS": "160", "TERM": "xterm", **env})
    proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(10)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("launcher", ["grid_local", "basic"])
def test_job_output_and_progress_never_share_a_line_on_a_terminal(tmp_path: Path, launcher: str) -> None:
    sweep_dir = tmp_path / "s"
    code, raw = run_in_terminal(
        [sys.executable, str(APP), "-m", "hydra/sweeper=grid", f"hydra/launcher={launcher}",
         f"hydra.sweep.dir={sweep_dir}", "alpha=[0.1,0.2,0.3,0.4]", "+hydra.launcher.max_parallel=2"
         if launcher == "grid_local" else "hydra.sweeper.max_batch_size=2"],
        tmp_path, {"JOB_TALK": "1", "JOB_SLEEP": "1.2"})
    assert code == 0, raw
    shown = screen(raw)
    assert "\x1b[2K" in raw  # the live line was drawn, on a terminal
    talk = [line for line in shown if "training with alpha=" in line or "done with alpha=" in line]
    assert len(talk) == 8, shown
    for line in shown:
        assert not ("[sweep]" in line and ("alpha=" in line or "[job" in line or "HYDRA" in line)), shown
        if "[sweep]" in line:
            assert line.startswith("[sweep] "), shown
    if launcher == "grid_local":
        assert any(line.startswith("[job 0] training with alpha=0.1") for line in shown), shown
        assert any("ETA" in line for line in shown)
    else:  # whole batches: nothing can know an ETA
        assert not any("ETA" in line for line in shown), shown
    summary = next(i for i, line in enumerate(shown) if "Sweep summary: 4 completed, 0 failed of 4" in line)
    assert shown[summary + 6:summary + 8] == [f"results.csv: {sweep_dir / 'results.csv'}",
                                              f"summary.yaml: {sweep_dir / 'summary.yaml'}"], shown


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _interrupt(args: List[str], cwd: Path, started: Path, signum: int, env: Optional[Dict[str, str]] = None) -> tuple:
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(started, proc)
    time.sleep(0.3)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


def _sweep_lines(output: str) -> str:
    """The sweep's own lines (a job's echoed output may hold anything)."""
    return "\n".join(line for line in output.splitlines() if not line.startswith("[job "))


@pytest.mark.parametrize("launcher", ["basic", "grid_local"])
@pytest.mark.parametrize("signum, expected", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ctrl_c_and_sigterm_end_a_sweep_cleanly(tmp_path: Path, launcher: str, signum: int, expected: int) -> None:
    sweep_dir = tmp_path / "s"
    code, output = _interrupt(
        [sys.executable, str(APP), "-m", "hydra/sweeper=grid", f"hydra/launcher={launcher}",
         f"hydra.sweep.dir={sweep_dir}", "alpha=[0.1,0.2]", "beta=[1,2]"],
        tmp_path, sweep_dir / "0" / "received.json", signum, env={"JOB_SLEEP": "30"})
    assert code == expected, output
    lines = _sweep_lines(output)
    assert "Traceback" not in lines and "HYDRA_FULL_ERROR" not in lines and "KeyboardInterrupt" not in lines
    assert f"Sweep interrupted: resume it with hydra.sweep.dir={sweep_dir} hydra.sweeper.resume=true" in lines
    assert f"summary.yaml: {sweep_dir / 'summary.yaml'}" in lines
    assert (sweep_dir / "results.csv").exists()


@pytest.mark.parametrize("signum, expected", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_gridsweep_ctrl_c_and_sigterm(tmp_path: Path, signum: int, expected: int) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import sys, time\nopen(sys.argv[2], 'w').close()\ntime.sleep(30)\nprint(1.0)\n")
    started = tmp_path / "started"
    code, output = _interrupt(
        [sys.executable, "-m", "grid_sweeper.cli", "run", "--sweep_dir", str(tmp_path / "s"), str(script),
         "--started", str(started), "--x", "[1, 2]"], tmp_path, started, signum)
    assert code == expected, output
    assert "Traceback" not in output and "interrupted" in output
    assert f"summary.yaml: {tmp_path / 's' / 'summary.yaml'}" in output
