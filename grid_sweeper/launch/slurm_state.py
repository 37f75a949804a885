"""Talking to Slurm's controller: submit, cancel, throttle, and job states without accounting.

States come from `squeue --states=all` (the controller keeps finished jobs for MinJobAge
seconds), then `scontrol show job`; `sacct` is asked only as a last resort and, after its first
failure (no slurmdbd), never again, with one debug line instead of a warning per poll.
"""
from __future__ import annotations

import logging
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

#: states of a job that has not ended (it may still run, or run again after a requeue)
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
    "POWER_UP_NODE", "UPDATE_DB",
})
#: ended states after which no result file comes and no requeue follows; any other ended
#: state (COMPLETED, FAILED, NODE_FAIL, PREEMPTED, states of newer Slurm versions) is given
#: `result_grace_s` for a result file (shared filesystems lag) or a requeue to show up
FINAL_STATES = frozenset({"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})
#: states a job reaches once it has been started (seen running at least once)
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT",
                            "STOPPED"})
VANISHED = "VANISHED"

_SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,exit_code:|,StartTime:|,EndTime:|,RestartCnt:|"
_TRANSIENT = ("timed out", "temporarily", "unable to contact", "try again", "socket",
              "connection refused", "resource temporarily unavailable")


class SlurmCommandError(RuntimeError):
    """A Slurm client command failed."""


@dataclass(frozen=True)
class JobState:
    """What the controller says about one job (array element)."""

    job_id: str
    state: str
    reason: str = ""
    exit_code: str = ""
    start_time: Optional[float] = None
    end_time: Optional[float] = None  # when it ended (for an active job: Slurm's expected end)
    restarts: int = 0  # times Slurm requeued it (node failure, preemption, scontrol requeue)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def started(self) -> bool:
        return self.state in STARTED_STATES

    def describe(self) -> str:
        """E.g. `CANCELLED (killed by signal 15)` or `FAILED (reason NonZeroExitCode, exit 3)`."""
        extra = []
        if self.reason and self.reason not in ("None", "(null)"):
            extra.append(f"reason {self.reason}")
        if self.exit_code:
            extra.append(self.exit_code)
        if self.restarts:
            extra.append(f"requeued {self.restarts} time(s)")
        return f"{self.state} ({', '.join(extra)})" if extra else self.state


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def transient_failure(self) -> bool:
        return self.returncode != 0 and any(t in self.stderr.lower() for t in _TRANSIENT)


class SlurmClient:
    """Runs Slurm's client commands with the given environment (e.g. a SLURM_CONF)."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, timeout_s: float = 60.0) -> None:
        self.env = dict(env) if env is not None else None
        self.timeout_s = timeout_s
        self.sbatch_calls = 0
        self._sacct_usable: Optional[bool] = None

    def run(self, argv: Sequence[str]) -> CommandResult:
        """Runs one command; a missing binary or a timeout is a failed result, never an exception."""
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CommandResult(-1, "", f"{argv[0]}: {exc}")
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def run_retrying(self, argv: Sequence[str], attempts: int = 4) -> CommandResult:
        """Runs a command again (1, 2, 4 s later) while it fails for a transient reason."""
        result = self.run(argv)
        for attempt in range(1, attempts):
            if not result.transient_failure:
                break
            log.warning("%s failed (%s); retrying", argv[0], result.stderr.strip())
            time.sleep(2 ** (attempt - 1))
            result = self.run(argv)
        return result

    # -- submission and control -------------------------------------------------------------

    def sbatch(self, script: str) -> str:
        """Submits a script file; returns the job id (the array id for arrays)."""
        self.sbatch_calls += 1
        result = self.run_retrying(["sbatch", "--parsable", script])
        if result.returncode != 0:
            raise SlurmCommandError(f"sbatch {script} failed: {result.stderr.strip()}")
        match = re.match(r"\s*(\d+)", result.stdout)
        if match is None:
            raise SlurmCommandError(f"cannot read a job id in sbatch's output {result.stdout!r}")
        return match.group(1)

    def cancel(self, job_ids: Iterable[str]) -> bool:
        ids = sorted(set(job_ids))
        if not ids:
            return True
        result = self.run_retrying(["scancel", *ids])
        if result.returncode != 0:
            log.error("scancel %s failed: %s", " ".join(ids), result.stderr.strip())
        return result.returncode == 0

    def set_array_throttle(self, array_id: str, throttle: int) -> bool:
        result = self.run(["scontrol", "update", f"JobId={array_id}",
                           f"ArrayTaskThrottle={int(throttle)}"])
        if result.returncode != 0:
            log.debug("cannot raise the throttle of %s: %s", array_id, result.stderr.strip())
        return result.returncode == 0

    def config_value(self, name: str) -> Optional[str]:
        """One value of `scontrol show config`, None when unknown."""
        result = self.run(["scontrol", "show", "config"])
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    def max_array_size(self, default: int = 1001) -> int:
        """MaxArraySize: an array may hold that many elements (indices 0..MaxArraySize-1)."""
        value = self.config_value("MaxArraySize")
        match = re.match(r"\s*(\d+)", value or "")
        return int(match.group(1)) if match and int(match.group(1)) > 0 else default

    # -- states -----------------------------------------------------------------------------

    def queue_states(self, array_ids: Iterable[str]) -> Optional[Dict[str, JobState]]:
        """States of all elements of the given arrays that the controller still knows; None when
        the controller could not be asked (then nothing can be concluded from absence)."""
        ids = sorted(set(array_ids))
        if not ids:
            return {}
        result = self.run(["squeue", "--noheader", "--array", "--states=all",
                           f"--jobs={','.join(ids)}", f"--Format={_SQUEUE_FORMAT}"])
        if result.returncode != 0:
            if "invalid job id" in result.stderr.lower():
                return {}  # none of them is known any more
            log.debug("squeue failed: %s", result.stderr.strip())
            return None
        return parse_squeue(result.stdout)

    def job_state(self, job_id: str) -> Optional[JobState]:
        """`scontrol show job` for one job the queue did not list; None when unknown to it."""
        result = self.run(["scontrol", "--oneliner", "show", "job", job_id])
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines():
            state = parse_scontrol_job(line)
            if state is not None and state.job_id == job_id:
                return state
        return None

    def accounting_state(self, job_id: str) -> Optional[JobState]:
        """`sacct` for a job the controller forgot; None without accounting (asked only once)."""
        if self._sacct_usable is False:
            return None
        result = self.run(["sacct", "--noheader", "--parsable2", "--allocations",
                           f"--jobs={job_id}", "--format=JobID,State,ExitCode,Start,End"])
        if result.returncode != 0:
            self._sacct_usable = False
            log.debug("sacct unusable (%s); job states come from squeue/scontrol only",
                      result.stderr.strip() or f"exit {result.returncode}")
            return None
        self._sacct_usable = True
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 3 and parts[0] == job_id:
                parts += ["", ""]
                return JobState(job_id, _state_word(parts[1]), "", _colon_exit(parts[2]),
                                _timestamp(parts[3]), _timestamp(parts[4]))
        return None


def parse_squeue(text: str) -> Dict[str, JobState]:
    """Parses `squeue --array --Format=JobArrayID:|,State:|,Reason:|,exit_code:|,StartTime:|,
    EndTime:|,RestartCnt:|` (the last two may be missing)."""
    states: Dict[str, JobState] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")] + ["", "", ""]
        if len(parts) < 8 or not parts[0]:
            continue
        job_id, state, reason, code, start, end, restarts = parts[:7]
        states[job_id] = JobState(job_id, _state_word(state), reason, _wait_status(code),
                                  _timestamp(start), _timestamp(end), _count(restarts))
    return states


def parse_scontrol_job(line: str) -> Optional[JobState]:
    """Parses one `scontrol --oneliner show job` line."""
    fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
    if "JobState" not in fields:
        return None
    array_job, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
    job_id = f"{array_job}_{task}" if array_job and task else fields.get("JobId", "")
    return JobState(job_id, _state_word(fields["JobState"]), fields.get("Reason", ""),
                    _colon_exit(fields.get("ExitCode", "")), _timestamp(fields.get("StartTime", "")),
                    _timestamp(fields.get("EndTime", "")), _count(fields.get("Restarts", "")))


def _count(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def _timestamp(text: str) -> Optional[float]:
    """Slurm's local `2024-05-01T12:00:00` -> epoch seconds; None for N/A, Unknown, ..."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _state_word(state: str) -> str:
    """`CANCELLED by 0` -> `CANCELLED`; `CANCELLED+` -> `CANCELLED`."""
    word = state.strip().split(" ")[0] if state.strip() else "UNKNOWN"
    return word.rstrip("+").upper()


def _wait_status(code: str) -> str:
    """squeue's exit_code is a raw wait status: 768 -> `exit 3`, 9 -> `signal 9`."""
    try:
        value = int(code)
    except ValueError:
        return ""
    if value & 0x7F:
        return f"signal {value & 0x7F}"
    return f"exit {value >> 8}" if value else ""


def _colon_exit(code: str) -> str:
    """scontrol/sacct ExitCode `3:0` -> `exit 3`, `0:15` -> `signal 15`."""
    status, _, sig = code.partition(":")
    if sig and sig.strip() not in ("", "0"):
        return f"signal {sig.strip()}"
    if status.strip() not in ("", "0"):
        return f"exit {status.strip()}"
    return ""


def split_ids(job_id: str) -> List[str]:
    """`123_4` -> [`123`, `4`]."""
    return job_id.split("_", 1)
