"""A real single-node Slurm cluster for the tests, started and stopped by the test setup.

Everything lives under one temp dir: a munged with its own key and socket, slurmctld, one slurmd
per virtual node (all on 127.0.0.1, each on its own port) and, in accounting mode, a MariaDB on
its own socket/port plus slurmdbd. Ports, names, sockets and dirs are chosen at start, so several
clusters (e.g. one per pytest-xdist worker) can run side by side. Needs root and the Debian
packages that ``scripts/install_slurm.sh`` installs; no systemd.

Use from Python::

    with SlurmCluster(accounting=False) as cluster:
        job_id = cluster.sbatch("--wrap", "hostname")
        cluster.wait_job(job_id)

By hand (debugging)::

    python -m tests.slurm_cluster start [--accounting]   # prints `export SLURM_CONF=...`
    python -m tests.slurm_cluster stop [DIR]             # DIR defaults to dirname($SLURM_CONF)

See docs/slurm-test-cluster.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

#: Environment variable put into every daemon this module starts (value: the cluster's dir);
#: ``stop()`` uses it to find every process that belongs to a cluster, slurmstepd included.
MARKER_ENV = "GRID_SWEEPER_TEST_SLURM"

#: Job states after which a job never runs again (without a requeue).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_CORE_PROGRAMS = (
    "munged",
    "mungekey",
    "munge",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
)
_ACCOUNTING_PROGRAMS = ("slurmdbd", "mariadbd", "mariadb-install-db", "mariadb", "sacct")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started or did not behave."""


@dataclass
class Node:
    """One virtual node: a slurmd of its own on 127.0.0.1:port."""

    name: str
    partition: str
    port: int
    cpus: int
    memory_mb: int
    gpus: int = 0


def which(program: str) -> Optional[str]:
    """Find ``program`` on PATH or in the sbin dirs (root's PATH may lack them)."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_SBIN_DIRS)
    return shutil.which(program, path=path)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (``kill -0`` says yes to zombies)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("State:"):
                    return line.split()[1] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    except OSError:
        return False
    return False


def _proc_environ(pid: int) -> Dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    env: Dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _proc_ppid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields after the last ')'.
    fields = data.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


def _all_pids() -> List[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ancestors(pid: int) -> set:
    seen = set()
    while pid and pid not in seen:
        seen.add(pid)
        parent = _proc_ppid(pid)
        if parent is None:
            break
        pid = parent
    return seen


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_ports(count: int) -> List[int]:
    """``count`` distinct TCP ports that are free right now.

    Taken from 20000-32767, below Linux's ephemeral range, so outgoing connections don't take
    them meanwhile; the caller retries with new ports if a daemon still fails to bind.
    """
    ports: List[int] = []
    rng = random.SystemRandom()
    while len(ports) < count:
        port = rng.randint(20000, 32767)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:  # Slurm's daemons listen on every address, so check them all
                sock.bind(("", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIVE_CLUSTERS: List[SlurmCluster] = []
_LIVE_LOCK = threading.Lock()


def _stop_live_clusters() -> None:
    with _LIVE_LOCK:
        clusters = list(_LIVE_CLUSTERS)
    for cluster in clusters:
        if cluster._owner_pid != os.getpid():
            continue  # a forked child exiting must not stop its parent's clusters
        with contextlib.suppress(Exception):
            cluster.stop()


atexit.register(_stop_live_clusters)


class SlurmCluster:
    """A throwaway Slurm cluster on 127.0.0.1 (root only, state under a temp dir).

    Partitions: ``cpu`` (default) with ``cpu_nodes`` nodes ``cpu1..cpuN`` and ``gpu`` with
    ``gpu_nodes`` nodes ``gpu1..gpuN`` that each advertise ``gpus_per_node`` fake GPUs (GRES
    ``gpu``, character devices under ``<dir>/dev``), so ``--gpus-per-node=K`` jobs get
    ``CUDA_VISIBLE_DEVICES``. Every node has ``cpus_per_node`` CPUs and ``memory_mb`` MB.
    Array indices must be below ``max_array_size`` (``MaxArraySize``); finished jobs stay visible
    to squeue/scontrol for ``min_job_age`` seconds; a requeued job may start again after
    ``cred_expire`` seconds (or at once: :meth:`release_held_back`). With ``accounting=True`` a
    MariaDB and slurmdbd run too and ``sacct`` works; without, there is no accounting at all.

    Every Slurm command needs ``SLURM_CONF``: use :meth:`env`, :meth:`activate` or :meth:`run`.
    With ``die_with_parent`` (the default) the daemons get SIGTERM when this process dies and a
    watchdog process stops the whole cluster (jobs too) and removes its dir, even after SIGKILL.
    """

    MAX_ARRAY_SIZE = 16
    MIN_JOB_AGE = 300
    KILL_WAIT = 2
    CRED_EXPIRE = 20
    RETURN_SETTLE_S = 4

    def __init__(
        self,
        accounting: bool = False,
        *,
        cpu_nodes: int = 2,
        gpu_nodes: int = 1,
        gpus_per_node: int = 4,
        cpus_per_node: int = 4,
        memory_mb: int = 8000,
        base_dir: Optional[str] = None,
        die_with_parent: bool = True,
        keep_dir: bool = False,
        debug: bool = False,
    ) -> None:
        self.accounting = accounting
        self.max_array_size = self.MAX_ARRAY_SIZE
        self.min_job_age = self.MIN_JOB_AGE
        self.kill_wait = self.KILL_WAIT
        self.cred_expire = self.CRED_EXPIRE
        self.cpu_nodes = cpu_nodes
        self.gpu_nodes = gpu_nodes
        self.gpus_per_node = gpus_per_node
        self.cpus_per_node = cpus_per_node
        self.memory_mb = memory_mb
        self.base_dir = base_dir
        self.die_with_parent = die_with_parent
        self.keep_dir = keep_dir
        self.debug = debug or bool(os.environ.get("GRID_SWEEPER_SLURM_DEBUG"))
        self.default_partition = "cpu"
        self.root: Optional[Path] = None
        self.cluster_name = ""
        self.nodes: List[Node] = []
        self.ports: Dict[str, int] = {}
        self._procs: Dict[str, subprocess.Popen] = {}
        self._started = False
        self._owner_pid = os.getpid()
        self._watchdog: Optional[subprocess.Popen] = None
        self._watchdog_fd: Optional[int] = None

    # ----------------------------------------------------------------- paths and names
    @property
    def partitions(self) -> Dict[str, List[str]]:
        """Partition name -> node names (``cpu`` is the default partition)."""
        parts: Dict[str, List[str]] = {"cpu": [], "gpu": []}
        for node in self.nodes:
            parts[node.partition].append(node.name)
        return parts

    @property
    def node_names(self) -> List[str]:
        return [node.name for node in self.nodes]

    @property
    def conf_path(self) -> Path:
        return self._dir("etc") / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self._dir("munge") / "munge.socket"

    def _dir(self, *parts: str) -> Path:
        if self.root is None:
            raise SlurmClusterError("cluster not started")
        return self.root.joinpath(*parts)

    # ----------------------------------------------------------------- environment
    def env(self) -> Dict[str, str]:
        """Variables a Slurm client needs to talk to this cluster (just ``SLURM_CONF``)."""
        return {"SLURM_CONF": str(self.conf_path)}

    def full_env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """``os.environ`` without inherited job variables, plus :meth:`env` and ``extra``."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("SLURM_") or k.startswith("SBATCH_") or k.startswith("SALLOC_"))
        }
        base.update(self.env())
        if extra:
            base.update(extra)
        return base

    @contextlib.contextmanager
    def _activation(self, saved: Dict[str, Optional[str]]) -> Iterator[SlurmCluster]:
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def activate(self) -> contextlib.AbstractContextManager[SlurmCluster]:
        """Set :meth:`env` in ``os.environ`` now; the returned context manager restores it.

        ``cluster.activate()`` alone leaves it set; ``with cluster.activate(): ...`` scopes it.
        """
        saved = {key: os.environ.get(key) for key in self.env()}
        os.environ.update(self.env())
        return self._activation(saved)

    # ----------------------------------------------------------------- commands
    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> subprocess.CompletedProcess:
        """Run a Slurm command (``["squeue", ...]``) against this cluster; text output."""
        proc = subprocess.run(
            list(args),
            env=self.full_env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise SlurmClusterError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def sbatch(self, *args: str, cwd: Optional[str] = None) -> str:
        """``sbatch --parsable ARGS``; returns the job id (the array's id for arrays)."""
        out = self.run(["sbatch", "--parsable", *args], cwd=cwd).stdout.strip()
        return out.split(";")[0]

    def squeue(self, all_states: bool = True) -> List[Dict[str, str]]:
        """Jobs the controller knows (finished ones too, for ``MinJobAge``, with all_states).

        Each row: ``job_id`` (``123`` or ``123_4``), ``array_job_id``, ``name``, ``state``,
        ``partition``, ``reason``, ``nodes``.
        """
        fields = ["job_id", "array_job_id", "name", "state", "partition", "reason", "nodes"]
        args = ["squeue", "--noheader", "--array", "--format=%i|%F|%j|%T|%P|%r|%N"]
        if all_states:
            args.append("--states=all")
        out = self.run(args).stdout
        return [dict(zip(fields, line.split("|", len(fields) - 1))) for line in out.splitlines() if line.strip()]

    def job_info(self, job_id: str) -> Dict[str, str]:
        """``scontrol show job -o JOB`` as a dict of its Key=Value fields (first record)."""
        out = self.run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        line = out.splitlines()[0] if out.strip() else ""
        info: Dict[str, str] = {}
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep:
                info[key] = value
        return info

    def job_states(self, job_id: str) -> Dict[str, str]:
        """``{task_id: state}`` for a job or every task of an array job (``scontrol``)."""
        out = self.run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        states: Dict[str, str] = {}
        for line in out.splitlines():
            fields = dict(t.partition("=")[::2] for t in line.split() if "=" in t)
            if "JobId" not in fields:
                continue
            task = fields.get("ArrayTaskId")
            key = f"{fields['ArrayJobId']}_{task}" if task else fields["JobId"]
            states[key] = fields.get("JobState", "")
        return states

    def wait_job(self, job_id: str, timeout: float = 60) -> Dict[str, str]:
        """Wait until the job (every task of an array) has finished; returns :meth:`job_states`."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.job_states(job_id)
            if states and all(s in FINISHED_STATES for s in states.values()):
                # Array tasks not started yet are folded into one pending record.
                return states
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"job {job_id} not finished after {timeout}s: {states}")
            time.sleep(0.2)

    def node_states(self) -> Dict[str, str]:
        """``{node: state}`` as sinfo reports it (``idle``, ``mixed``, ``down*``, ...)."""
        out = self.run(["sinfo", "--noheader", "--Node", "--format=%N|%T"]).stdout
        states = {}
        for line in out.splitlines():
            name, _, state = line.partition("|")
            if name.strip():
                states[name.strip()] = state.strip()
        return states

    def active_jobs(self) -> List[Dict[str, str]]:
        """Jobs that are pending, running, completing, ... (not finished)."""
        return [row for row in self.squeue(all_states=True) if row["state"] not in FINISHED_STATES]

    def wait_idle(self, timeout: float = 60, all_nodes_idle: bool = True) -> None:
        """Wait until no job is pending or running and every node is idle.

        With ``all_nodes_idle=False`` a drained or down node is fine: only wait until no node
        is allocated or completing.
        """
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.active_jobs()
            nodes = self.node_states()
            if all_nodes_idle:
                settled = bool(nodes) and all(s == "idle" for s in nodes.values())
            else:
                busy = ("alloc", "mix", "complet")
                settled = not any(b in s for s in nodes.values() for b in busy)
            if not jobs and settled:
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"not idle after {timeout}s: jobs={jobs} nodes={nodes}")
            time.sleep(0.2)

    def cancel_all(self, wait: bool = True, timeout: float = 30) -> None:
        """scancel every job that is not finished; with ``wait``, until none is left and no
        node is busy."""
        ids = sorted({row["array_job_id"] for row in self.active_jobs()})
        if ids:
            self.run(["scancel", *ids], check=False)
        if wait:
            self.wait_idle(timeout=timeout, all_nodes_idle=False)

    def resume_nodes(self) -> List[str]:
        """Put drained, down or failed nodes back into service; returns their names."""
        bad = ("drain", "down", "fail")
        names = [n for n, s in self.node_states().items() if any(b in s for b in bad)]
        if names:
            self.run(["scontrol", "update", f"NodeName={','.join(names)}", "State=RESUME"])
        return names

    def fail_node(self, name: str) -> List[str]:
        """The node dies: its slurmd, the job steps on it and their processes are SIGKILLed at once,
        and the controller is told the node is DOWN (what it concludes itself after SlurmdTimeout),
        so its jobs end NODE_FAIL and Slurm requeues them. Returns the ids of the jobs that ran there."""
        out = self.run(["squeue", "--noheader", "--states=RUNNING,COMPLETING", "-w", name, "--format=%A"]).stdout
        jobs = sorted({line.strip() for line in out.splitlines() if line.strip()})
        victims = []
        for pid in _all_pids():
            env = _proc_environ(pid)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            step = cmdline.startswith("slurmstepd") and any(f"[{job}." in cmdline for job in jobs)
            if step or (env.get("SLURM_CONF") == str(self.conf_path) and env.get("SLURM_JOB_ID") in jobs):
                victims.append(pid)
        slurmd = self._procs.get(f"slurmd-{name}")
        if slurmd is not None:
            victims.append(slurmd.pid)
        for pid in victims:
            _kill(pid, signal.SIGKILL)
        self._wait_dead(victims, 10)
        # the node's local state is lost with it (else its next slurmd purges the dead jobs' spool
        # dirs while the requeued runs of the same jobs launch there, and they fail to launch)
        for leftover in self._dir("spool", name).glob("job*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.run(["scontrol", "update", f"NodeName={name}", "State=DOWN", "Reason=node_failure_test"])
        return jobs

    def restore_node(self, name: str, timeout: float = 60) -> None:
        """Start the node's slurmd again and put it back into service."""
        self._spawn(f"slurmd-{name}", [which("slurmd") or "slurmd", "-D", "-N", name])
        deadline = time.monotonic() + timeout
        while True:
            self.run(["scontrol", "update", f"NodeName={name}", "State=RESUME"], check=False)
            state = self.node_states().get(name, "")
            if not any(bad in state for bad in ("down", "drain", "fail", "unk")):
                # The controller tells a returning node to clean up the jobs it lost, some seconds
                # after it registers; a requeued run of one of them launched there before that is
                # cleaned up with them (JobLaunchFailure). No event marks the end of it: wait it out.
                time.sleep(self.RETURN_SETTLE_S)
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"node {name} did not come back: {state}")
            time.sleep(0.5)

    def release_held_back(self, *job_ids: str) -> List[str]:
        """Make pending jobs held back by a begin time eligible now; returns their ids.

        A requeued job waits ``cred_expire`` seconds (Reason=BeginTime) before it may run again;
        this runs ``scontrol update JobId=... StartTime=now+1`` on such jobs (all of them without
        ids). The extra second matters: a launch in the same second as the kill of the previous
        run is refused by slurmd ("Job credential revoked") and the job ends FAILED.
        """
        out = self.run(["squeue", "--noheader", "--states=PENDING", "--format=%i|%r"]).stdout
        wanted = {str(j) for j in job_ids}
        released = []
        for line in out.splitlines():
            job, _, reason = line.strip().partition("|")
            if reason == "BeginTime" and (not wanted or job in wanted):
                self.run(["scontrol", "update", f"JobId={job}", "StartTime=now+1"], check=False)
                released.append(job)
        return released

    @contextlib.contextmanager
    def releasing_held_back(self, every_s: float = 1.0) -> Iterator[None]:
        """While inside, requeued jobs are released every `every_s` seconds (`release_held_back`),
        so that a test need not wait out their ~2 min begin time."""
        stop = threading.Event()

        def release() -> None:
            while not stop.wait(every_s):
                self.release_held_back()

        helper = threading.Thread(target=release, name="release-held-back", daemon=True)
        helper.start()
        try:
            yield
        finally:
            stop.set()
            helper.join()

    def sacct(self, *args: str) -> str:
        """``sacct ARGS`` output (accounting mode only)."""
        if not self.accounting:
            raise SlurmClusterError("sacct needs a cluster started with accounting=True")
        return self.run(["sacct", *args]).stdout

    # ----------------------------------------------------------------- availability
    @staticmethod
    def unavailable_reason(accounting: bool = False) -> Optional[str]:
        """Why a cluster can't start here (not root, programs missing), or None."""
        if not sys.platform.startswith("linux"):
            return "the test Slurm cluster needs Linux"
        if os.geteuid() != 0:
            return "the test Slurm cluster needs root (slurmd runs jobs as root, mknod for GPUs)"
        programs = _CORE_PROGRAMS + (_ACCOUNTING_PROGRAMS if accounting else ())
        missing = [p for p in programs if which(p) is None]
        if missing:
            return f"Slurm test cluster programs missing: {', '.join(missing)} (run scripts/install_slurm.sh as root)"
        return None

    # ----------------------------------------------------------------- start
    def start(self, timeout: float = 90, attempts: int = 3) -> SlurmCluster:
        """Start every daemon and wait until all nodes are idle; stops everything on failure.

        Retries with new ports when a daemon could not bind its port.
        """
        if self._started:
            return self
        reason = self.unavailable_reason(self.accounting)
        if reason:
            raise SlurmClusterError(reason)
        self._owner_pid = os.getpid()
        for attempt in range(1, attempts + 1):
            with _LIVE_LOCK:
                _LIVE_CLUSTERS.append(self)
            self._started = True
            try:
                self._prepare()
                if self.die_with_parent:
                    self._start_watchdog()
                self._start_daemons(timeout)
                return self
            except Exception as exc:
                logs = self.log_tail()
                bind_clash = "Address already in use" in logs or "bind" in str(exc).lower()
                keep = self.keep_dir
                self.keep_dir = True  # keep logs for the message, then remove below
                self.stop()
                self.keep_dir = keep
                root = self.root
                if not keep and root is not None:
                    shutil.rmtree(root, ignore_errors=True)
                if bind_clash and attempt < attempts:
                    continue
                raise SlurmClusterError(f"Slurm test cluster failed to start: {exc}\n--- logs ---\n{logs}") from exc
        raise AssertionError("unreachable")

    def _prepare(self) -> None:
        uniq = uuid.uuid4().hex[:8]
        self.cluster_name = f"gs{uniq}"
        self.root = Path(tempfile.mkdtemp(prefix=f"slurm-{uniq}-", dir=self.base_dir))
        self.root.chmod(0o755)
        for sub in ("etc", "log", "run", "state", "spool", "munge", "dev", "db", "tmp"):
            self._dir(sub).mkdir(mode=0o755)
        names = ["slurmctld"] + (["slurmdbd", "mariadb"] if self.accounting else [])
        node_specs = [("cpu", f"cpu{i}", 0) for i in range(1, self.cpu_nodes + 1)]
        node_specs += [("gpu", f"gpu{i}", self.gpus_per_node) for i in range(1, self.gpu_nodes + 1)]
        ports = free_ports(len(names) + len(node_specs))
        self.ports = dict(zip(names, ports))
        self.nodes = [
            Node(name, part, port, self.cpus_per_node, self.memory_mb, gpus)
            for (part, name, gpus), port in zip(node_specs, ports[len(names) :])
        ]
        for node in self.nodes:
            self._dir("spool", node.name).mkdir(mode=0o755)
        self._procs = {}
        self._write_configs()
        self._save_state()

    def _write_configs(self) -> None:
        root = self.root
        assert root is not None
        log = self._dir("log")
        run = self._dir("run")
        level = "debug2" if self.debug else "info"
        lines = [
            f"# Test cluster {self.cluster_name}, written by tests/slurm_cluster.py",
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={self.ports['slurmctld']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=cred_expire={self.cred_expire},socket={self.munge_socket}",
            f"StateSaveLocation={self._dir('state')}",
            f"SlurmdSpoolDir={self._dir('spool')}/%n",
            f"SlurmctldPidFile={run}/slurmctld.pid",
            f"SlurmdPidFile={run}/slurmd-%n.pid",
            f"SlurmctldLogFile={log}/slurmctld.log",
            f"SlurmdLogFile={log}/slurmd-%n.log",
            f"SlurmctldDebug={level}",
            f"SlurmdDebug={level}",
            f"TmpFS={self._dir('tmp')}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1",
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            f"MinJobAge={self.min_job_age}",
            f"MaxArraySize={self.max_array_size}",
            f"FirstJobId={random.randint(1, 999) * 1000}",
            f"KillWait={self.kill_wait}",
            "InactiveLimit=0",
            "MessageTimeout=10",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "JobRequeue=1",
            "OverTimeLimit=0",
            "UnkillableStepTimeout=30",
            "GresTypes=gpu",
            "JobCompType=jobcomp/none",
            "MailProg=/bin/true",
        ]
        if self.accounting:
            lines += [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=localhost",
                f"AccountingStoragePort={self.ports['slurmdbd']}",
                f"AccountingStoragePass={self.munge_socket}",
                "JobAcctGatherType=jobacct_gather/linux",
                "JobAcctGatherFrequency=30",
            ]
        else:
            lines += [
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
            ]
        for node in self.nodes:
            gres = f" Gres=gpu:{node.gpus}" if node.gpus else ""
            lines.append(
                f"NodeName={node.name} NodeHostname=localhost NodeAddr=127.0.0.1 "
                f"Port={node.port} CPUs={node.cpus} RealMemory={node.memory_mb}{gres} "
                "State=UNKNOWN"
            )
        for part, nodes in self.partitions.items():
            if nodes:
                default = "YES" if part == self.default_partition else "NO"
                lines.append(
                    f"PartitionName={part} Nodes={','.join(nodes)} Default={default} MaxTime=INFINITE State=UP"
                )
        self.conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

        gres_lines = ["AutoDetect=off"]
        for node in self.nodes:
            if not node.gpus:
                continue
            devices = []
            for index in range(node.gpus):
                dev = self._dir("dev", node.name, f"nvidia{index}")
                dev.parent.mkdir(exist_ok=True)
                os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(195, index))
                devices.append(str(dev))
            for dev in devices:
                gres_lines.append(f"NodeName={node.name} Name=gpu File={dev}")
        (self._dir("etc") / "gres.conf").write_text("\n".join(gres_lines) + "\n", encoding="utf-8")

        if self.accounting:
            dbd = self._dir("etc") / "slurmdbd.conf"
            dbd.write_text(
                "\n".join(
                    [
                        "AuthType=auth/munge",
                        f"AuthInfo=socket={self.munge_socket}",
                        "DbdHost=localhost",
                        "DbdAddr=127.0.0.1",
                        f"DbdPort={self.ports['slurmdbd']}",
                        "SlurmUser=root",
                        f"PidFile={run}/slurmdbd.pid",
                        f"LogFile={log}/slurmdbd.log",
                        f"DebugLevel={level}",
                        "StorageType=accounting_storage/mysql",
                        "StorageHost=127.0.0.1",
                        f"StoragePort={self.ports['mariadb']}",
                        "StorageUser=root",
                        "StorageLoc=slurm_acct_db",
                    ]
                )
                + "\n",
                encoding="utf-8",
            )
            dbd.chmod(0o600)

    def _save_state(self) -> None:
        state = {
            "cluster_name": self.cluster_name,
            "accounting": self.accounting,
            "ports": self.ports,
            "nodes": [asdict(n) for n in self.nodes],
            "max_array_size": self.max_array_size,
            "min_job_age": self.min_job_age,
        }
        (self._dir("cluster.json")).write_text(json.dumps(state, indent=2), encoding="utf-8")

    def _start_watchdog(self) -> None:
        """Start a process that stops this cluster if this process dies without ``stop()``.

        It reads a pipe whose write end only this process holds: EOF without the word
        ``stop`` first (this process was killed, even by SIGKILL) makes it run ``stop()``.
        """
        read_fd, write_fd = os.pipe()
        try:
            with open(self._dir("log", "watchdog.out"), "ab") as log:
                self._watchdog = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "_watchdog", str(self.root)],
                    stdin=read_fd,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                    cwd="/",
                )
        finally:
            os.close(read_fd)
        self._watchdog_fd = write_fd

    def _dismiss_watchdog(self) -> None:
        if self._watchdog_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._watchdog_fd, b"stop")
            with contextlib.suppress(OSError):
                os.close(self._watchdog_fd)
            self._watchdog_fd = None
        if self._watchdog is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
            if self._watchdog.poll() is None:
                self._watchdog.kill()
            self._watchdog = None

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen:
        """Start one daemon in the foreground (its own session), logging to log/<name>.out."""
        env = self.full_env({MARKER_ENV: str(self.root)})
        env["PATH"] = env.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_SBIN_DIRS)
        use_pdeathsig = self.die_with_parent and threading.current_thread() is threading.main_thread()
        with open(self._dir("log", f"{name}.out"), "ab") as out:
            proc = subprocess.Popen(
                list(args),
                env=env,
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_set_pdeathsig if use_pdeathsig else None,
            )
        self._procs[name] = proc
        self._dir("run", f"{name}.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
        return proc

    def _wait_for(self, what: str, check, timeout: float, procs: Sequence[str] = ()) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name in procs:
                code = self._procs[name].poll()
                if code is not None:
                    raise SlurmClusterError(f"{name} exited with {code} while waiting for {what}")
            if check():
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.05)

    def _quiet_ok(self, args: Sequence[str], **kwargs) -> bool:
        try:
            return self.run(args, check=False, timeout=10, **kwargs).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _start_daemons(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        munge = self._dir("munge")
        key = munge / "munge.key"
        subprocess.run(
            [which("mungekey") or "mungekey", "--create", f"--keyfile={key}"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._spawn(
            "munged",
            [
                which("munged") or "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self._dir('run', 'munged.pid')}",
                f"--log-file={self._dir('log', 'munged.log')}",
                f"--seed-file={munge / 'munged.seed'}",
                "--num-threads=4",
            ],
        )
        self._wait_for(
            "munged",
            lambda: self.munge_socket.exists() and self._quiet_ok(["munge", "-n", f"--socket={self.munge_socket}"]),
            left(),
            ["munged"],
        )

        if self.accounting:
            self._start_database(left)
            self._spawn("slurmdbd", [which("slurmdbd") or "slurmdbd", "-D"])
            self._wait_for("slurmdbd", lambda: _port_is_open(self.ports["slurmdbd"]), left(), ["slurmdbd"])

        self._spawn("slurmctld", [which("slurmctld") or "slurmctld", "-D", "-c", "-i"])
        self._wait_for("slurmctld", lambda: self._quiet_ok(["scontrol", "ping"]), left(), ["slurmctld"])
        for node in self.nodes:
            self._spawn(f"slurmd-{node.name}", [which("slurmd") or "slurmd", "-D", "-N", node.name])
        slurmds = [f"slurmd-{node.name}" for node in self.nodes]
        self._wait_for(
            "all nodes idle",
            lambda: self._all_nodes_idle(),
            left(),
            ["slurmctld", *slurmds],
        )

    def _all_nodes_idle(self) -> bool:
        try:
            states = self.node_states()
        except (SlurmClusterError, subprocess.TimeoutExpired):
            return False
        return set(states) == set(self.node_names) and all(s == "idle" for s in states.values())

    def _start_database(self, left) -> None:
        data = self._dir("db", "data")
        sock = self._dir("db", "mariadb.sock")
        common = ["--no-defaults"]
        small = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
        install = subprocess.run(
            [
                which("mariadb-install-db") or "mariadb-install-db",
                *common,
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *small,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise SlurmClusterError(f"mariadb-install-db failed: {install.stdout[-2000:]}")
        self._spawn(
            "mariadb",
            [
                which("mariadbd") or "mariadbd",
                *common,
                f"--datadir={data}",
                "--user=root",
                f"--socket={sock}",
                f"--port={self.ports['mariadb']}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self._dir('run', 'mariadb.pid')}",
                f"--log-error={self._dir('log', 'mariadb.log')}",
                f"--tmpdir={self._dir('tmp')}",
                "--skip-grant-tables",
                "--skip-log-bin",
                *small,
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-name-resolve",
            ],
        )
        self._wait_for(
            "mariadb",
            lambda: (
                sock.exists()
                and self._quiet_ok(
                    [
                        which("mariadb") or "mariadb",
                        "--no-defaults",
                        "--protocol=tcp",
                        "--host=127.0.0.1",
                        f"--port={self.ports['mariadb']}",
                        "--user=root",
                        "--execute=select 1",
                    ]
                )
            ),
            left(),
            ["mariadb"],
        )

    # ----------------------------------------------------------------- stop
    def cluster_pids(self) -> List[int]:
        """Live processes of this cluster: daemons, slurmstepds, their children, job processes."""
        if self.root is None:
            return []
        root = str(self.root)
        conf = str(self.conf_path)
        me = _ancestors(os.getpid())
        pids = _all_pids()
        marked = set()
        children: Dict[int, List[int]] = {}
        for pid in pids:
            ppid = _proc_ppid(pid)
            if ppid is not None:
                children.setdefault(ppid, []).append(pid)
            env = _proc_environ(pid)
            if env.get(MARKER_ENV) == root or (env.get("SLURM_CONF") == conf and "SLURM_JOB_ID" in env):
                marked.add(pid)
        for pid_file in self._pid_files():
            pid = _read_pid(pid_file)
            if pid and _proc_environ(pid).get(MARKER_ENV) == root:
                marked.add(pid)
        result = set()
        stack = list(marked)
        while stack:
            pid = stack.pop()
            if pid in result:
                continue
            result.add(pid)
            stack.extend(children.get(pid, []))
        return sorted(p for p in result if p not in me and pid_alive(p))

    def _pid_files(self) -> List[Path]:
        run = self.root / "run" if self.root else None
        return sorted(run.glob("*.pid")) if run and run.is_dir() else []

    def running(self) -> bool:
        """True while any daemon of this cluster is alive."""
        return bool(self.cluster_pids())

    def stop(self, timeout: float = 15, graceful: bool = True) -> None:
        """Cancel every job (``graceful``), stop every daemon (by pid file, SIGTERM then
        SIGKILL), and kill any process left (slurmstepd, job processes); removes the dir unless
        ``keep_dir``. Safe to call more than once, and on a half-started cluster."""
        with _LIVE_LOCK:
            if self in _LIVE_CLUSTERS:
                _LIVE_CLUSTERS.remove(self)
        self._dismiss_watchdog()
        if self.root is None or not self.root.exists():
            self._started = False
            return
        try:
            if graceful and self.conf_path.exists() and self._daemon_alive("slurmctld"):
                with contextlib.suppress(Exception):
                    self._cancel_for_stop()
            # Compute nodes first, then the controller, the accounting, munge last.
            order = ["slurmd-", "slurmctld", "slurmdbd", "mariadb", "munged"]
            files = self._pid_files()
            for prefix in order:
                group = [f for f in files if f.stem.startswith(prefix)]
                self._terminate([_read_pid(f) for f in group], timeout)
            # Anything left (slurmstepd, jobs, unknown daemons): kill outright.
            for _ in range(3):
                left = self.cluster_pids()
                if not left:
                    break
                for pid in left:
                    _kill(pid, signal.SIGKILL)
                self._wait_dead(left, 5)
            for proc in self._procs.values():
                with contextlib.suppress(Exception):
                    proc.wait(timeout=1)
        finally:
            self._started = False
            if not self.keep_dir:
                shutil.rmtree(self.root, ignore_errors=True)

    def _cancel_for_stop(self) -> None:
        """scancel everything and give the jobs KillWait (+3 s) to end; short command timeouts."""
        fmt = ["squeue", "--noheader", "--format=%F|%T"]
        rows = [line.split("|") for line in self.run(fmt, timeout=5).stdout.split()]
        ids = sorted({row[0] for row in rows if len(row) == 2})
        if not ids:
            return
        self.run(["scancel", *ids], check=False, timeout=5)
        deadline = time.monotonic() + self.kill_wait + 3
        while time.monotonic() < deadline:
            states = self.run(fmt, timeout=5).stdout.split()
            if not any(s.endswith(("RUNNING", "COMPLETING", "CONFIGURING")) for s in states):
                return
            time.sleep(0.1)

    def _daemon_alive(self, name: str) -> bool:
        pid = _read_pid(self._dir("run", f"{name}.pid"))
        return bool(pid) and pid_alive(pid) and _proc_environ(pid).get(MARKER_ENV) == str(self.root)

    def _terminate(self, pids: Sequence[Optional[int]], timeout: float) -> None:
        root = str(self.root)
        mine = [p for p in pids if p and pid_alive(p) and _proc_environ(p).get(MARKER_ENV) == root]
        for pid in mine:
            _kill(pid, signal.SIGTERM)
        if not self._wait_dead(mine, timeout):
            for pid in mine:
                if pid_alive(pid):
                    _kill(pid, signal.SIGKILL)
            self._wait_dead(mine, 5)

    def _wait_dead(self, pids: Sequence[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            for proc in self._procs.values():
                proc.poll()  # reap our own children at once
            if not any(pid_alive(p) for p in pids):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    # ----------------------------------------------------------------- misc
    def log_tail(self, lines: int = 25) -> str:
        """The last lines of every log file, for error messages."""
        if self.root is None or not self.root.exists():
            return ""
        chunks = []
        for path in sorted(self._dir("log").glob("*")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            if text:
                chunks.append(f"== {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(chunks)

    @classmethod
    def attach(cls, root: str) -> SlurmCluster:
        """A handle on a cluster started elsewhere (e.g. by ``python -m tests.slurm_cluster``)."""
        path = Path(root).resolve()
        state = json.loads((path / "cluster.json").read_text(encoding="utf-8"))
        cluster = cls(accounting=state["accounting"], die_with_parent=False)
        cluster.root = path
        cluster.cluster_name = state["cluster_name"]
        cluster.ports = state["ports"]
        cluster.nodes = [Node(**n) for n in state["nodes"]]
        cluster.max_array_size = state["max_array_size"]
        cluster.min_job_age = state["min_job_age"]
        cluster._started = True
        return cluster

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = "accounting" if self.accounting else "no accounting"
        return f"<SlurmCluster {self.cluster_name or '(not started)'} {mode} root={self.root}>"


def _read_pid(path: Path) -> Optional[int]:
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``start [--accounting]`` / ``stop [DIR]`` / ``status [DIR]`` for debugging by hand."""
    parser = argparse.ArgumentParser(prog="python -m tests.slurm_cluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start a cluster that outlives this command")
    start.add_argument("--accounting", action="store_true", help="with slurmdbd + MariaDB")
    start.add_argument("--debug", action="store_true", help="debug2 log levels")
    start.add_argument("--base-dir", help="parent of the cluster dir (default: the temp dir)")
    for name in ("stop", "status"):
        cmd = sub.add_parser(name)
        cmd.add_argument("dir", nargs="?", help="cluster dir (default: dirname of $SLURM_CONF/..)")
    watch = sub.add_parser("_watchdog", help=argparse.SUPPRESS)
    watch.add_argument("dir")
    args = parser.parse_args(argv)

    if args.cmd == "_watchdog":  # see SlurmCluster._start_watchdog
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for pytest is not for us
        told = sys.stdin.buffer.read()
        if told.startswith(b"stop") or not (Path(args.dir) / "cluster.json").exists():
            return 0
        print(f"owner of {args.dir} died: stopping the cluster", file=sys.stderr)
        SlurmCluster.attach(args.dir).stop(graceful=False)
        return 0

    if args.cmd == "start":
        cluster = SlurmCluster(
            accounting=args.accounting,
            die_with_parent=False,
            keep_dir=True,
            debug=args.debug,
            base_dir=args.base_dir,
        )
        began = time.monotonic()
        try:
            cluster.start()
        except SlurmClusterError as exc:
            print(exc, file=sys.stderr)
            return 1
        with _LIVE_LOCK:  # outlive this command
            if cluster in _LIVE_CLUSTERS:
                _LIVE_CLUSTERS.remove(cluster)
        print(f"# cluster {cluster.cluster_name} up in {time.monotonic() - began:.1f}s")
        print(f"# partitions: {cluster.partitions}; logs: {cluster.root}/log")
        print(f"export SLURM_CONF={cluster.conf_path}")
        print(f"# stop with: python -m tests.slurm_cluster stop {cluster.root}")
        return 0

    root = args.dir
    if not root:
        conf = os.environ.get("SLURM_CONF")
        if not conf:
            parser.error("give the cluster dir, or export SLURM_CONF of the cluster")
        root = str(Path(conf).resolve().parent.parent)
    cluster = SlurmCluster.attach(root)
    if args.cmd == "status":
        pids = cluster.cluster_pids()
        print(f"{cluster!r}: {len(pids)} processes alive {pids}")
        if pids:
            print(cluster.run(["sinfo"], check=False).stdout, end="")
            print(cluster.run(["squeue"], check=False).stdout, end="")
        return 0
    cluster.stop()
    left = [p for p in cluster.cluster_pids() if pid_alive(p)] if cluster.root.exists() else []
    print(f"stopped {cluster.cluster_name}" + (f"; still alive: {left}" if left else ""))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
