"""The test Slurm cluster really schedules and runs jobs, and stops without leftovers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

try:  # the same import as conftest.py, so both use one module object
    from tests.slurm_cluster import MARKER_ENV, SlurmCluster, SlurmClusterError, pid_alive
except ImportError:
    from slurm_cluster import MARKER_ENV, SlurmCluster, SlurmClusterError, pid_alive


def _submit(cluster: SlurmCluster, tmp_path: Path, script: str, *args: str) -> str:
    return cluster.sbatch(f"--chdir={tmp_path}", f"--output={tmp_path}/%x-%j.out", *args, "--wrap", script)


def _processes_mentioning(text: str) -> list:
    """Live pids whose command line or environment mentions ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        blobs = []
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{name}/{part}", "rb") as fh:
                    blobs.append(fh.read())
            except OSError:
                pass
        if any(text.encode() in blob for blob in blobs) and pid_alive(int(name)):
            found.append(int(name))
    return found


def test_layout(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.partitions == {"cpu": ["cpu1", "cpu2"], "gpu": ["gpu1"]}
    assert slurm_cluster.accounting is False
    assert slurm_cluster.max_array_size == 16
    assert slurm_cluster.min_job_age == 300
    assert slurm_cluster.env() == {"SLURM_CONF": str(slurm_cluster.conf_path)}
    assert slurm_cluster.node_states() == {"cpu1": "idle", "cpu2": "idle", "gpu1": "idle"}
    out = slurm_cluster.run(["sinfo", "--noheader", "--format=%P %D"]).stdout.split()
    assert out == ["cpu*", "2", "gpu", "1"]


def test_cpu_job_and_finished_job_visible(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = _submit(
        slurm_cluster,
        tmp_path,
        'echo "part=$SLURM_JOB_PARTITION node=$SLURMD_NODENAME"; srun echo from-srun',
        "--job-name=cpujob",
    )
    states = slurm_cluster.wait_job(job)
    assert states == {job: "COMPLETED"}
    out = (tmp_path / f"cpujob-{job}.out").read_text()
    assert "part=cpu node=cpu" in out
    assert "from-srun" in out
    # Finished jobs stay visible (MinJobAge) to squeue --states=all and scontrol.
    rows = [r for r in slurm_cluster.squeue() if r["job_id"] == job]
    assert rows and rows[0]["state"] == "COMPLETED" and rows[0]["name"] == "cpujob"
    info = slurm_cluster.job_info(job)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0"


def test_gpu_job_sees_two_gpus(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = _submit(
        slurm_cluster,
        tmp_path,
        'echo "CVD=$CUDA_VISIBLE_DEVICES node=$SLURMD_NODENAME"',
        "--job-name=gpujob",
        "--partition=gpu",
        "--gpus-per-node=2",
    )
    assert slurm_cluster.wait_job(job) == {job: "COMPLETED"}
    out = (tmp_path / f"gpujob-{job}.out").read_text()
    cvd = out.split("CVD=")[1].split()[0]
    assert len(cvd.split(",")) == 2, out
    assert "node=gpu1" in out


def test_gpu_request_beyond_node_rejected(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    proc = slurm_cluster.run(
        ["sbatch", f"--chdir={tmp_path}", "-p", "gpu", "--gpus-per-node=5", "--wrap", "true"],
        check=False,
    )
    assert proc.returncode != 0


def test_array_throttled(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    script = (
        f'echo "$(date +%s.%N) start" >> {tmp_path}/t$SLURM_ARRAY_TASK_ID; sleep 1; '
        f'echo "$(date +%s.%N) end" >> {tmp_path}/t$SLURM_ARRAY_TASK_ID'
    )
    job = _submit(slurm_cluster, tmp_path, script, "--job-name=arr", "--array=0-5%2")
    assert slurm_cluster.job_info(job).get("ArrayTaskThrottle") == "2"
    states = slurm_cluster.wait_job(job)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(6)}
    spans = []
    for i in range(6):
        lines = (tmp_path / f"t{i}").read_text().split("\n")
        spans.append((float(lines[0].split()[0]), float(lines[1].split()[0])))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    tasks = {r["job_id"]: r["state"] for r in slurm_cluster.squeue() if r["array_job_id"] == job}
    assert tasks == states


def test_max_array_size(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    top = slurm_cluster.max_array_size - 1
    ok = slurm_cluster.run(["sbatch", f"--chdir={tmp_path}", f"--array={top}", "--wrap", "true"], check=False)
    assert ok.returncode == 0, ok.stderr
    too_big = slurm_cluster.run(["sbatch", f"--chdir={tmp_path}", f"--array={top + 1}", "--wrap", "true"], check=False)
    assert too_big.returncode != 0
    assert "array" in too_big.stderr.lower()


def test_scancel_kills_the_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = _submit(slurm_cluster, tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 300")
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
        assert time.monotonic() < deadline, slurm_cluster.job_info(job)
        time.sleep(0.1)
    pid = int((tmp_path / "pid").read_text())
    assert pid_alive(pid)
    slurm_cluster.run(["scancel", job])
    assert slurm_cluster.wait_job(job, timeout=30) == {job: "CANCELLED"}
    deadline = time.monotonic() + 15
    while pid_alive(pid):
        assert time.monotonic() < deadline, "cancelled job's process still alive"
        time.sleep(0.1)


def test_no_sacct_without_accounting(slurm_cluster: SlurmCluster) -> None:
    proc = slurm_cluster.run(["sacct", "-X", "-n"], check=False)
    assert proc.returncode != 0
    assert "disabled" in proc.stderr
    with pytest.raises(SlurmClusterError):
        slurm_cluster.sacct("-n")


def test_sacct_with_accounting(slurm_cluster_accounting: SlurmCluster, tmp_path: Path) -> None:
    cluster = slurm_cluster_accounting
    assert cluster.accounting is True
    job = _submit(cluster, tmp_path, "exit 3", "--job-name=acct")
    arr = _submit(cluster, tmp_path, "true", "--job-name=acctarr", "--array=0-2%1")
    cluster.wait_job(job)
    cluster.wait_job(arr)
    deadline = time.monotonic() + 20
    while True:  # slurmctld reports to slurmdbd asynchronously
        out = cluster.sacct("-X", "-n", "-P", "--format=JobID,JobName,State,ExitCode", "-j", job)
        arr_out = cluster.sacct("-X", "-n", "-P", "--format=JobID,State", "-j", arr)
        rows = [line.split("|") for line in out.splitlines()]
        arr_rows = sorted(line.split("|") for line in arr_out.splitlines())
        done = [[f"{arr}_{i}", "COMPLETED"] for i in range(3)]
        if rows == [[job, "acct", "FAILED", "3:0"]] and arr_rows == done:
            break
        assert time.monotonic() < deadline, (out, arr_out)
        time.sleep(0.5)


def test_slurm_env_fixture(slurm_env: SlurmCluster, tmp_path: Path) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_env.conf_path)
    job = _submit(slurm_env, tmp_path, "sleep 300")  # left running: the fixture cancels it
    assert job


def test_activate_restores(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/nonexistent")
    with slurm_cluster.activate():
        assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf_path)
    assert os.environ["SLURM_CONF"] == "/nonexistent"


def test_requeued_job_released(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = _submit(
        slurm_cluster,
        tmp_path,
        f'echo run >> {tmp_path}/runs; [ "$SLURM_RESTART_COUNT" = 1 ] || sleep 300',
        "--requeue",
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "runs").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    slurm_cluster.run(["scontrol", "requeue", job])
    deadline = time.monotonic() + 30
    while job not in slurm_cluster.release_held_back(job):
        assert time.monotonic() < deadline, slurm_cluster.job_info(job)
        time.sleep(0.2)
    assert slurm_cluster.wait_job(job, timeout=30) == {job: "COMPLETED"}
    assert (tmp_path / "runs").read_text().split() == ["run", "run"]


@pytest.mark.parametrize("accounting", [False, True], ids=["plain", "accounting"])
def test_stop_leaves_nothing_running(accounting: bool, slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A second cluster runs beside the session one; stopping it leaves no process behind."""
    reason = SlurmCluster.unavailable_reason(accounting)
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(accounting=accounting)
    try:
        cluster.start()
        assert cluster.cluster_name != slurm_cluster.cluster_name
        assert not set(cluster.ports.values()) & set(slurm_cluster.ports.values())
        for node in cluster.nodes:
            assert node.port not in {n.port for n in slurm_cluster.nodes}
        job = _submit(cluster, tmp_path, "srun sleep 300")
        deadline = time.monotonic() + 30
        while cluster.job_info(job).get("JobState") != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)  # let srun start its step
        daemons = cluster.cluster_pids()
        assert len(daemons) >= 6  # munged, slurmctld(+scriptd), 3 slurmd, slurmstepd, ...
        root = str(cluster.root)
    finally:
        cluster.stop()
    assert not Path(root).exists()
    assert not [p for p in daemons if pid_alive(p)]
    assert _processes_mentioning(root) == []
    assert _processes_mentioning(f"{MARKER_ENV}={root}") == []
    # The session cluster is untouched.
    slurm_cluster.wait_idle(timeout=30)


def test_resume_nodes(slurm_cluster: SlurmCluster) -> None:
    slurm_cluster.run(["scontrol", "update", "NodeName=cpu2", "State=DRAIN", "Reason=test"])
    assert "drain" in slurm_cluster.node_states()["cpu2"]
    assert slurm_cluster.resume_nodes() == ["cpu2"]
    slurm_cluster.wait_idle(timeout=30)


class _BrokenCluster(SlurmCluster):
    def _write_configs(self) -> None:
        super()._write_configs()
        with open(self.conf_path, "a", encoding="utf-8") as fh:
            fh.write("NoSuchSlurmOption=1\n")


def test_failed_start_reports_logs_and_cleans_up(slurm_cluster: SlurmCluster) -> None:
    cluster = _BrokenCluster()
    with pytest.raises(SlurmClusterError, match="NoSuchSlurmOption") as info:
        cluster.start(timeout=30)
    assert "slurmctld" in str(info.value)
    assert cluster.root is not None and not cluster.root.exists()
    assert _processes_mentioning(str(cluster.root)) == []
