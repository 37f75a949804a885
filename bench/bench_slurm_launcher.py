"""Benchmark: 100 trivial Hydra jobs, submit to all results, on a throwaway test Slurm cluster.

Compares `hydra/launcher=grid_slurm` with hydra-submitit-launcher's `submitit_slurm` on the same
cluster in the same run, and counts sbatch calls (an `sbatch` wrapper first on PATH logs them).
The cluster's MaxArraySize is raised to 1001 for the comparison (submitit cannot split arrays);
a last run shows grid_slurm splitting 100 jobs at MaxArraySize=16.
`--first-sbatch N` instead starts an N-job grid_slurm sweep (MaxArraySize=1001), reports the
time from the command's start to its first `sbatch` and the launcher's peak RSS until then plus
`--watch` seconds, then stops it with Ctrl-C (which cancels the submitted jobs).

    sudo python bench/bench_slurm_launcher.py [--jobs 100] [--repeat 2] [--first-sbatch 10000]

Needs root and the packages of scripts/install_slurm.sh (like the test cluster).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.slurm_cluster import SlurmCluster  # noqa: E402

APP = '''\
import hydra

@hydra.main(version_base=None, config_path=None)
def main(cfg):
    return cfg.a * 2

if __name__ == "__main__":
    main()
'''

SBATCH_WRAPPER = '''#!/bin/sh
echo "$(date +%s.%N) $@" >> "{log}"
exec "{real}" "$@"
'''

LAUNCHERS = {
    "grid_slurm": ["hydra/launcher=grid_slurm"],
    "submitit_slurm": ["hydra/launcher=submitit_slurm"],
}


def run_sweep(work: Path, cluster: SlurmCluster, launcher: str, jobs: int, tag: str
              ) -> Dict[str, float]:
    """One multirun; returns wall time, sbatch calls, results found, log lines."""
    sweep_dir = work / f"sweep-{tag}"
    calls = work / f"sbatch-{tag}.log"
    bin_dir = work / "bin"
    env = cluster.full_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                            "GRID_BENCH_SBATCH_LOG": str(calls)})
    (bin_dir / "sbatch").write_text(SBATCH_WRAPPER.format(log=calls, real=shutil.which("sbatch")))
    (bin_dir / "sbatch").chmod(0o755)
    cmd = [sys.executable, str(work / "app.py"), "-m", *LAUNCHERS[launcher],
           f"+a=range(0,{jobs})", f"hydra.sweep.dir={sweep_dir}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{launcher} sweep failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    output = proc.stdout + proc.stderr
    return {
        "wall_s": wall,
        "cpu_s": cpu,  # the submitting process and the Slurm commands it ran, not the jobs
        "sbatch_calls": len(calls.read_text().splitlines()) if calls.exists() else 0,
        "results": len(list(sweep_dir.glob("*/.hydra/config.yaml"))),
        "log_lines": len(output.splitlines()),
        "sacct_warnings": output.count("sacct"),
    }


def bench(max_array_size: int, launchers: List[str], jobs: int, repeat: int
          ) -> Dict[str, List[Dict[str, float]]]:
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name in launchers}
    cluster = SlurmCluster(accounting=False)
    cluster.max_array_size = max_array_size
    with cluster, tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        work = Path(tmp)
        (work / "bin").mkdir()
        (work / "app.py").write_text(APP)
        for rep in range(repeat):  # alternate the launchers so drift hits both alike
            for name in launchers:
                results[name].append(run_sweep(work, cluster, name, jobs, f"{name}-{rep}"))
                cluster.wait_idle(timeout=120)
    return results


def report(title: str, results: Dict[str, List[Dict[str, float]]]) -> None:
    print(f"\n{title}")
    print(f"{'launcher':<16}{'wall s (median)':>16}{'runs':>24}{'submitter cpu s':>17}"
          f"{'sbatch':>8}{'results':>9}{'log lines':>11}{'sacct msgs':>12}")
    for name, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        last = runs[-1]
        print(f"{name:<16}{statistics.median(walls):>16.1f}"
              f"{' '.join(f'{w:.1f}' for w in walls):>24}"
              f"{statistics.median(r['cpu_s'] for r in runs):>17.2f}{last['sbatch_calls']:>8.0f}"
              f"{last['results']:>9.0f}{last['log_lines']:>11.0f}{last['sacct_warnings']:>12.0f}")


def first_sbatch(jobs: int, watch_s: float) -> Dict[str, float]:
    """Seconds from the start of a `jobs`-job grid_slurm sweep to its first sbatch; peak RSS (MB)
    of the launcher process until `watch_s` seconds after it."""
    import signal

    cluster = SlurmCluster(accounting=False)
    cluster.max_array_size = 1001
    with cluster, tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        work = Path(tmp)
        (work / "bin").mkdir()
        (work / "app.py").write_text(APP)
        calls = work / "sbatch.log"
        env = cluster.full_env({"PATH": f"{work / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"})
        (work / "bin" / "sbatch").write_text(SBATCH_WRAPPER.format(log=calls, real=shutil.which("sbatch")))
        (work / "bin" / "sbatch").chmod(0o755)
        side = int(round(jobs ** 0.5))
        cmd = [sys.executable, str(work / "app.py"), "-m", "hydra/sweeper=grid", "hydra/launcher=grid_slurm",
               f"+a=range({side})", f"+b=range({jobs // side})", f"hydra.sweep.dir={work / 'sweep'}"]
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak_kb, first = 0, None
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass
            if first is None and calls.exists() and calls.read_text().strip():
                first = float(calls.read_text().split()[0]) - start
            if first is not None and time.time() - start > first + watch_s:
                break
            if time.time() - start > 600:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # cancels what was submitted
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        cluster.wait_idle(timeout=120)
        return {"first_sbatch_s": first if first is not None else float("nan"), "peak_rss_mb": peak_kb / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--first-sbatch", type=int, default=0, metavar="N")
    parser.add_argument("--watch", type=float, default=20.0)
    args = parser.parse_args()
    reason = SlurmCluster.unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    if args.first_sbatch:
        got = first_sbatch(args.first_sbatch, args.watch)
        print(f"{args.first_sbatch}-job grid_slurm sweep (hydra/sweeper=grid, MaxArraySize=1001): "
              f"first sbatch {got['first_sbatch_s']:.2f} s after the start (goal <= 5 s); launcher "
              f"peak RSS {got['peak_rss_mb']:.0f} MB until {args.watch:.0f} s later (goal <= 400 MB)")
        return 0
    same = bench(1001, list(LAUNCHERS), args.jobs, args.repeat)
    report(f"{args.jobs} trivial jobs, MaxArraySize=1001, cpu partition (8 CPUs)", same)
    split = bench(SlurmCluster.MAX_ARRAY_SIZE, ["grid_slurm"], args.jobs, 1)
    report(f"{args.jobs} trivial jobs, MaxArraySize={SlurmCluster.MAX_ARRAY_SIZE} (split)", split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
