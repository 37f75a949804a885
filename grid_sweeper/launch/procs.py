"""Starting job processes (fork, spawn, argv) in their own process groups, and signalling them."""
from __future__ import annotations

import dataclasses
import gc
import os
import pickle
import signal
import subprocess
import sys
import warnings
from typing import Any, Callable, Optional, Sequence

from .child import ChildSetup, flush_c_stdio, forked_child_main, libc

# the package may not be importable from the new interpreter's default sys.path
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SPAWN_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from grid_sweeper.launch.child import spawn_main; spawn_main(sys.argv[2])"
)


class JobProcess:
    """A running job: its leader pid, its process group, and an fd that is readable once it exits."""

    def __init__(self, pid: int, popen: Optional[subprocess.Popen] = None) -> None:
        self.pid = pid
        self.pgid = pid
        self._popen = popen
        self.returncode: Optional[int] = None
        self.pidfd: Optional[int] = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(pid)
            except OSError:  # old kernel, or the process is already gone and reaped
                self.pidfd = None

    def poll(self) -> Optional[int]:
        """Reap the leader if it ended: exit code, or -N when killed by signal N; None if running.

        Before reaping, what is left of the job's process group is killed: while the leader is an
        unreaped zombie its group id cannot be reused, so this never hits another process.
        """
        if self.returncode is not None:
            return self.returncode
        if not self._has_exited():
            return None
        self._kill_group_leftovers()
        if self.returncode is None:
            try:
                if self._popen is not None:
                    self.returncode = self._popen.wait()
                else:
                    _, status = os.waitpid(self.pid, 0)
                    self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped by someone else: the exit status is lost
                self.returncode = 255
        self.close()
        return self.returncode

    def _has_exited(self) -> bool:
        if not hasattr(os, "waitid"):  # pragma: no cover - platforms without waitid
            return self._popen.poll() is not None if self._popen else _reap_now(self)
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _kill_group_leftovers(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the job's whole process group (or the leader, before it has its group)."""
        try:
            os.killpg(self.pgid, sig)
            return
        except ProcessLookupError:
            pass
        except PermissionError:  # the group id is not ours (yet): fall back to the leader
            pass
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _reap_now(proc: JobProcess) -> bool:  # pragma: no cover - platforms without waitid
    """Without waitid there is no peeking: reap right away and keep the status."""
    pid, status = os.waitpid(proc.pid, os.WNOHANG)
    if pid == 0:
        return False
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True


def prepare_fork() -> None:
    """Load what forked children use, once, so that each child starts fast."""
    libc()


def start_forked(
    target: Callable[[], Any], setup: ChildSetup, quiet_thread_warning: bool = True
) -> JobProcess:
    """Fork a child that runs `target` (see `child.forked_child_main`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    flush_c_stdio()
    parent = os.getpid()
    # the child's garbage collector leaves frozen objects alone, so it does not copy the whole
    # inherited heap page by page (copy-on-write) the first time it runs
    gc.freeze()
    try:
        with warnings.catch_warnings():
            if quiet_thread_warning:  # Python >= 3.12 warns on fork with threads; we checked them
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            pid = os.fork()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()
    if pid == 0:  # pragma: no cover - runs in the child
        forked_child_main(target, setup, parent)
    try:
        os.setpgid(pid, pid)  # also done by the child: whoever runs first wins the race
    except OSError:
        pass
    return JobProcess(pid)


def _open_logs(setup: ChildSetup) -> tuple:
    for path in {os.path.dirname(setup.stdout), os.path.dirname(setup.stderr)}:
        if path:
            os.makedirs(path, exist_ok=True)
    out = open(setup.stdout, "ab")  # closed by the caller
    err = out if setup.stderr == setup.stdout else open(setup.stderr, "ab")
    return out, err


def _popen(argv: Sequence[str], setup: ChildSetup) -> JobProcess:
    env = dict(os.environ)
    env.update(setup.env)
    out, err = _open_logs(setup)
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=setup.cwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # own session, hence own process group
        )
    finally:
        out.close()
        if err is not out:
            err.close()
    return JobProcess(popen.pid, popen)


def start_argv(argv: Sequence[str], setup: ChildSetup) -> JobProcess:
    """Run a command (an argv list, never a shell string) with its output in the log files."""
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a list of arguments, not a string")
    return _popen(argv, setup)


def start_spawned(target: Callable[[], Any], setup: ChildSetup, tmp_dir: str) -> JobProcess:
    """Run `target` in a fresh interpreter: slower to start, but safe whatever this process holds."""
    import multiprocessing.spawn

    try:
        import cloudpickle

        target_bytes = cloudpickle.dumps(target, protocol=pickle.HIGHEST_PROTOCOL)
    except ImportError:  # pragma: no cover - cloudpickle comes with submitit
        target_bytes = pickle.dumps(target, protocol=pickle.HIGHEST_PROTOCOL)
    preparation = multiprocessing.spawn.get_preparation_data("grid-local-job")
    preparation.pop("authkey", None)  # only multiprocessing's own pickler may send it
    payload = {
        "preparation": preparation,
        "target": target_bytes,
        "setup": setup,
        "parent_pid": os.getpid(),
    }
    payload_path = f"{setup.result}.payload"
    with open(payload_path, "wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    argv = [sys.executable, "-c", _SPAWN_CODE, _PACKAGE_ROOT, payload_path]
    return _popen(argv, dataclasses.replace(setup, cwd=None))  # the child changes directory


def exit_description(returncode: int) -> str:
    """`exited with code 3` or `killed by signal SIGSEGV (...)`."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    hint = {
        "SIGKILL": " (killed from outside, e.g. by the out-of-memory killer)",
        "SIGSEGV": " (segmentation fault)",
        "SIGBUS": " (bus error)",
        "SIGABRT": " (aborted)",
    }.get(name, "")
    return f"killed by signal {name}{hint}"
