"""What runs inside a job's process: its own process group, output files, the call, the result.

A forked child calls `forked_child_main` right after `os.fork()`. A spawned child is a fresh
interpreter that calls `spawn_main(PAYLOAD)` (see `procs.start_spawned`).
"""
from __future__ import annotations

import ctypes
import errno
import faulthandler
import io
import json
import logging
import os
import pickle
import shutil
import signal
import sys
import traceback
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

OK = "ok"
ERROR = "error"

#: (OK, value) or (ERROR, exception or None, "Type: message", traceback text)
Outcome = Tuple[Any, ...]

_PR_SET_PDEATHSIG = 1


@dataclass
class ChildSetup:
    """Where a job's process writes its output and result, and what it changes first."""

    stdout: str
    stderr: str
    result: str
    env: Dict[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None
    close_fds: List[int] = field(default_factory=list)


@cache
def libc() -> Optional[ctypes.CDLL]:
    """The C library of this process, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - exotic platforms
        return None


def flush_c_stdio() -> None:
    """Flush C-level stdio buffers (printf from extensions) before an `os._exit`."""
    lib = libc()
    if lib is not None:
        try:
            lib.fflush(None)
        except (AttributeError, OSError):  # pragma: no cover
            pass


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the launcher dies, so a killed launcher leaves no running job."""
    lib = libc()
    if lib is None or not sys.platform.startswith("linux"):
        return
    try:
        lib.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (AttributeError, OSError):  # pragma: no cover
        return
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        os._exit(128 + int(signal.SIGKILL))


def _text_stream(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def redirect_output(stdout_path: str, stderr_path: str) -> None:
    """Point fds 1 and 2 at the log files (so C and subprocess output lands there too), 0 at null."""
    for path in {os.path.dirname(stdout_path), os.path.dirname(stderr_path)}:
        if path:
            os.makedirs(path, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        new = os.open(path, flags, 0o644)
        os.dup2(new, fd)
        os.close(new)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.__stdout__ = _text_stream(1)
    sys.stderr = sys.__stderr__ = _text_stream(2)
    sys.stdin = sys.__stdin__ = open(os.devnull, encoding="utf-8")


_current: Optional[ChildSetup] = None  # this process's setup, when it is a job process


def where_path(result_path: str) -> str:
    """The side file in which a job tells where its logs ended up."""
    return f"{result_path}.where"


def current_logs() -> Dict[str, str]:
    """This job process's log files (stdout, stderr), or {} outside a job process of the pool."""
    if _current is None:
        return {}
    return {"stdout": os.path.abspath(_current.stdout), "stderr": os.path.abspath(_current.stderr)}


def relocate_output(output_dir: str) -> Tuple[str, str]:
    """Move this job's log files into `output_dir` (as stdout.log/stderr.log) and go on writing there.

    For jobs that learn their output dir only once running (a Hydra job composes its config in its
    own process). What was written so far moves along; the launcher is told the new paths.
    Outside a job process this does nothing and returns ("", "").
    """
    setup = _current
    if setup is None:
        return "", ""
    os.makedirs(output_dir, exist_ok=True)
    moved: Dict[int, str] = {}
    for fd, old, name in ((1, setup.stdout, "stdout.log"), (2, setup.stderr, "stderr.log")):
        if fd == 2 and old == setup.stdout:  # one file for both: it has moved already
            moved[2] = moved[1]
            break
        new = os.path.abspath(os.path.join(output_dir, name))
        if old != new:
            _flush_std()
            _move_open_file(fd, old, new)
        moved[fd] = new
    setup.stdout, setup.stderr = moved[1], moved[2]
    tmp = where_path(setup.result) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"output_dir": os.path.abspath(output_dir), "stdout": moved[1],
                   "stderr": moved[2]}, f)
    os.replace(tmp, where_path(setup.result))
    return moved[1], moved[2]


def _move_open_file(fd: int, old: str, new: str) -> None:
    """Rename the file behind `fd` (it stays open); across file systems copy it and reopen."""
    try:
        os.replace(old, new)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    target = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with open(old, "rb") as src:
        shutil.copyfileobj(src, os.fdopen(os.dup(target), "wb"))
    os.dup2(target, fd)
    os.close(target)
    os.unlink(old)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or odd stream: nothing to keep
            pass


def _dumps(outcome: Outcome) -> bytes:
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # try cloudpickle (lambdas, local classes) next
        import cloudpickle  # submitit's dependency; only needed for unusual values

        return cloudpickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)


def dump_pickle(obj: Any, path: str) -> None:
    """Pickle `obj` into `path` (with cloudpickle where plain pickle fails), atomically."""
    data = _dumps(obj)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_result(path: str, outcome: Outcome) -> None:
    """Write the outcome atomically; a value that cannot be pickled becomes an error outcome."""
    try:
        data = _dumps(outcome)
    except Exception as e:
        if outcome[0] == OK:
            what = f"the job's return value of type {type(outcome[1]).__name__} cannot be pickled"
        else:
            what = "the job's exception cannot be pickled"
        data = pickle.dumps((ERROR, None, f"{what}: {type(e).__name__}: {e}", ""))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def error_outcome(exc: BaseException) -> Outcome:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    line = f"{type(exc).__name__}: {exc}"
    try:  # some exceptions pickle but cannot be unpickled (extra __init__ arguments)
        pickle.loads(pickle.dumps(exc))
        sent: Optional[BaseException] = exc
    except Exception:  # send the text only
        sent = None
    return (ERROR, sent, line, text)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def run_target(target: Callable[[], Any], result_path: str) -> int:
    """Call the job, write its outcome, return the exit code for the process."""
    try:
        value = target()
    except SystemExit as e:  # the job's own exit code tells the launcher
        return _exit_code(e)
    except BaseException as e:  # every failure goes back to the launcher
        traceback.print_exc()
        write_result(result_path, error_outcome(e))
        return 1
    write_result(result_path, (OK, value))
    return 0


def _finish(code: int) -> NoReturn:
    try:
        logging.shutdown()
    except Exception:  # exiting anyway
        pass
    _flush_std()
    flush_c_stdio()
    os._exit(code)


def _reset_signals() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # pragma: no cover
        pass
    # a job starts with the dispositions a fresh process has, not the launcher's Python handlers
    # (a packed Slurm worker's submitit handler for USR2 would checkpoint the worker from each job)
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError, TypeError):  # pragma: no cover - signals Python cannot touch
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def forked_child_main(target: Callable[[], Any], setup: ChildSetup, parent_pid: int) -> NoReturn:
    """Body of a forked job process; never returns."""
    global _current
    code = 1
    try:
        _current = setup
        os.setpgid(0, 0)
        _reset_signals()
        for fd in setup.close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        redirect_output(setup.stdout, setup.stderr)
        _die_with_parent(parent_pid)
        faulthandler.enable(file=sys.stderr, all_threads=True)
        os.environ.update(setup.env)
        if setup.cwd:
            os.chdir(setup.cwd)
        code = run_target(target, setup.result)
    except BaseException:  # never let the child run the parent's code
        try:
            traceback.print_exc()
        except BaseException:
            pass
    _finish(code)


def spawn_main(payload_path: str) -> NoReturn:
    """Body of a spawned job process: load the payload the launcher wrote, run it."""
    import multiprocessing.spawn

    faulthandler.enable(file=sys.stderr, all_threads=True)
    with open(payload_path, "rb") as f:
        payload = pickle.load(f)
    os.unlink(payload_path)
    global _current
    _current = payload["setup"]
    _die_with_parent(payload["parent_pid"])
    multiprocessing.spawn.prepare(payload["preparation"])  # sys.path, __main__, cwd
    if _current.cwd:
        os.chdir(_current.cwd)
    code = 1
    try:
        target = pickle.loads(payload["target"])
        code = run_target(target, _current.result)
    except BaseException as e:
        traceback.print_exc()
        write_result(_current.result, error_outcome(e))
    _finish(code)
