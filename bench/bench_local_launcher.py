"""Benchmark of `hydra/launcher=grid_local`; prints figures and ratios.

1. Start-up cost: 64 trivial jobs (the task returns at once), whole `python app.py -m ...` wall
   time with grid_local, Hydra's BasicLauncher, hydra-joblib-launcher and submitit_local.
   The marginal cost per job is (wall(64 jobs) - wall(1 job)) / 63; the CPU per job is
   (CPU(64 jobs) - CPU(1 job)) / 63, the launcher process and every job process together. Each
   trivial job also records the CPU its process spent before the task function ran.
2. GPU packing: 4 fake GPU ids, 16 one-GPU jobs of 1 s each, `--repeat` runs (the median is
   reported); the jobs' own records prove that no two jobs running at the same time shared a GPU.
The issue's goals are printed last, each measured side by side with its anchor in this run.

    python bench/bench_local_launcher.py [--jobs 64] [--skip-submitit] [--launchers grid_local,basic]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

TRIVIAL_APP = """
import os, time
import hydra

@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg):
    if os.environ.get("BENCH_PRE_TASK"):  # CPU this process spent before the task function
        with open(os.environ["BENCH_PRE_TASK"], "a") as f:
            f.write(f"{os.getpid()} {time.process_time()}\\n")
    return cfg.x

if __name__ == "__main__":
    main()
"""

GPU_APP = """
import json, os, time
import hydra

@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg):
    start = time.time()
    time.sleep(1.0)
    record = {"x": cfg.x, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
              "start": start, "end": time.time(), "pid": os.getpid()}
    with open(os.path.join(cfg.records, f"{cfg.x}.json"), "w") as f:
        json.dump(record, f)

if __name__ == "__main__":
    main()
"""

LAUNCHERS: Dict[str, List[str]] = {
    "grid_local": ["hydra/launcher=grid_local", "hydra.launcher.console_output=false"],
    "basic": ["hydra/launcher=basic"],
    "joblib": ["hydra/launcher=joblib"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}


def run_sweep(app: Path, workdir: Path, args: List[str], env: Optional[Dict[str, str]] = None
              ) -> Tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and the children it waited for) of one
    `python app.py -m ...` run; fails loudly if the sweep fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(app), "-m", *args, "hydra/job_logging=disabled"],
        cwd=workdir, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({' '.join(args)}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_overhead(tmp: Path, jobs: int, names: List[str], repeat: int) -> Dict[str, Dict[str, float]]:
    """Best of `repeat` runs per launcher (the machine may be shared), 1 job and `jobs` jobs."""
    app = tmp / "trivial_app.py"
    app.write_text(TRIVIAL_APP)
    out: Dict[str, Dict[str, float]] = {}
    runs: Dict[Tuple[str, int], List[Tuple[float, float, float]]] = {}
    for r in range(repeat):  # launchers interleaved: a burst of load hits them all alike
        for name in names:
            for n in (1, jobs):
                sweep = f"hydra.sweep.dir={tmp / 'runs' / name / f'{n}-{r}'}"
                pre_task = tmp / f"pre-{name}-{n}-{r}.txt"
                wall, cpu = run_sweep(app, tmp, [f"+x=range({n})", sweep, *LAUNCHERS[name]],
                                      {"BENCH_PRE_TASK": str(pre_task)})
                runs.setdefault((name, n), []).append((wall, cpu, _pre_task_ms(pre_task)))
    for name in names:
        best = {n: min(runs[(name, n)]) for n in (1, jobs)}  # best wall of `repeat` runs
        cpu = {n: min(run[1] for run in runs[(name, n)]) for n in (1, jobs)}
        out[name] = {
            "wall_1": best[1][0],
            "wall_n": best[jobs][0],
            "cpu_n": cpu[jobs],
            "per_job_ms": 1000.0 * (best[jobs][0] - best[1][0]) / max(jobs - 1, 1),
            "cpu_per_job_ms": 1000.0 * (cpu[jobs] - cpu[1]) / max(jobs - 1, 1),
            "pre_task_ms": best[jobs][2],
        }
        print(f"  {name:15s} {jobs} jobs: {best[jobs][0]:6.2f} s (CPU {cpu[jobs]:6.2f} s)   "
              f"1 job: {best[1][0]:5.2f} s   marginal per job: {out[name]['per_job_ms']:7.1f} ms   "
              f"CPU per job: {out[name]['cpu_per_job_ms']:6.1f} ms", flush=True)
    return out


def _pre_task_ms(path: Path) -> float:
    """Median CPU ms that a job's own process spent before the task ran (forked job processes
    only: a job run inside the launcher's process counts the launcher's start-up too)."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return float("nan")
    values = sorted(1000.0 * float(cpu) for pid, cpu in lines)
    return values[len(values) // 2] if values else float("nan")


def overlaps(records: List[dict]) -> List[str]:
    """Pairs of jobs that shared a GPU while both ran."""
    found = []
    for i, a in enumerate(records):
        for b in records[i + 1:]:
            shared = set(a["gpus"].split(",")) & set(b["gpus"].split(","))
            if shared and a["start"] < b["end"] and b["start"] < a["end"]:
                found.append(f"jobs {a['x']} and {b['x']} shared GPU {sorted(shared)}")
    return found


def bench_gpu_packing(tmp: Path, run: int = 0) -> Dict[str, object]:
    app = tmp / "gpu_app.py"
    app.write_text(GPU_APP)
    records_dir = tmp / f"gpu_records_{run}"
    records_dir.mkdir()
    wall, _ = run_sweep(app, tmp, [
        "+x=range(16)", f"+records={records_dir}", f"hydra.sweep.dir={tmp / 'runs' / f'gpu-{run}'}",
        "hydra/launcher=grid_local", "hydra.launcher.gpus=[0,1,2,3]",
        "hydra.launcher.gpus_per_job=1", "hydra.launcher.console_output=false",
    ])
    records = [json.loads(p.read_text()) for p in sorted(records_dir.glob("*.json"))]
    span = max(r["end"] for r in records) - min(r["start"] for r in records)
    bad = overlaps(records)
    per_gpu: Dict[str, int] = {}
    for r in records:
        per_gpu[r["gpus"]] = per_gpu.get(r["gpus"], 0) + 1
    return {"jobs": len(records), "wall": wall, "span": span, "overlaps": bad, "per_gpu": per_gpu}


def bench_gpu_packing_runs(tmp: Path, repeat: int) -> Dict[str, object]:
    """`repeat` runs; the figures of the median run (by whole-command time), every run checked."""
    runs = sorted((bench_gpu_packing(tmp, r) for r in range(repeat)), key=lambda g: g["wall"])
    median = dict(runs[len(runs) // 2])
    median["walls"] = [g["wall"] for g in runs]
    median["overlaps"] = [o for g in runs for o in g["overlaps"]]  # type: ignore[attr-defined]
    median["all_jobs"] = all(g["jobs"] == 16 for g in runs)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--skip-submitit", action="store_true")
    parser.add_argument("--launchers", default=",".join(LAUNCHERS),
                        help="comma-separated, grid_local first (default: all)")
    args = parser.parse_args()
    names = [n for n in args.launchers.split(",")
             if not (args.skip_submitit and n == "submitit_local")]
    assert names[0] == "grid_local" and all(n in LAUNCHERS for n in names), names
    print(f"CPUs: {os.cpu_count()}, python {sys.version.split()[0]}, "
          f"load average before: {os.getloadavg()[0]:.2f} (other work slows every figure)")
    with tempfile.TemporaryDirectory(prefix="bench-grid-local-") as d:
        tmp = Path(d)
        print(f"1) {args.jobs} trivial jobs, whole command wall time, best of {args.repeat}")
        res = bench_overhead(tmp, args.jobs, names, args.repeat)
        ours = res["grid_local"]["wall_n"]
        for name in names[1:]:
            print(f"  grid_local is {res[name]['wall_n'] / ours:5.2f}x faster than {name} "
                  f"(marginal per job: {res[name]['per_job_ms'] / max(res['grid_local']['per_job_ms'], 1e-9):5.1f}x)")
        print(f"2) GPU packing: 4 fake GPUs, 16 one-GPU jobs of 1 s, median of {args.repeat} runs")
        gpu = bench_gpu_packing_runs(tmp, args.repeat)
        print(f"  jobs recorded: {gpu['jobs']}, first start to last end: {gpu['span']:.2f} s, "
              f"whole command: {gpu['wall']:.2f} s (runs: "
              + ", ".join(f"{w:.2f}" for w in gpu["walls"]) + " s)")
        print(f"  jobs per GPU: {gpu['per_gpu']}")
        print(f"  concurrent jobs sharing a GPU: {len(gpu['overlaps'])}"
              + "".join(f"\n    {o}" for o in gpu["overlaps"]))
        print(f"  grid_local job processes spent {res['grid_local']['pre_task_ms']:.1f} ms CPU "
              "(median) before the task function ran")
        print("Goals (issue #13), measured above:")
        if "basic" in res:
            print(f"  {args.jobs} trivial jobs, grid_local vs BasicLauncher: "
                  f"{res['basic']['wall_n'] / ours:.2f}x (goal >= 3x)")
            print(f"  CPU per trivial job: grid_local {res['grid_local']['cpu_per_job_ms']:.1f} ms "
                  f"(goal <= 30 ms), BasicLauncher {res['basic']['cpu_per_job_ms']:.1f} ms")
        print(f"  16 one-GPU 1 s jobs on 4 fake GPUs, whole command: {gpu['wall']:.2f} s median, "
              f"{min(gpu['walls']):.2f} s best (goal <= 4.6 s, ideal 4 s plus start-up)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if gpu["overlaps"] or not gpu["all_jobs"]:
            sys.exit(1)


if __name__ == "__main__":
    main()
