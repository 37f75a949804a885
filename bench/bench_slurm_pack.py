"""Benchmark: 200 trivial Hydra jobs on a throwaway test Slurm cluster, one Slurm task per job vs
packed allocations (`hydra.launcher.pack=true workers=4`), side by side in one run.

Prints each way's wall time (command start to exit, all results in), the ratio (goal: packed
>= 3x faster) and checks that every job has exactly one record.

    sudo python bench/bench_slurm_pack.py [--jobs 200] [--workers 4] [--repeat 2]

Needs root and the packages of scripts/install_slurm.sh (like the test cluster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_slurm_launcher import APP  # noqa: E402  (the same trivial app)
from tests.slurm_cluster import SlurmCluster  # noqa: E402


def run(work: Path, cluster: SlurmCluster, jobs: int, extra: List[str], tag: str) -> float:
    sweep_dir = work / f"sweep-{tag}"
    cmd = [sys.executable, str(work / "app.py"), "-m", "hydra/sweeper=grid", "hydra/launcher=grid_slurm",
           f"+a=range(0,{jobs})", f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.poll_interval_s=1", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=cluster.full_env(), capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in (sweep_dir / ".grid_sweep" / "records").glob("*.json")]
    numbers = sorted(r["job"] for r in records)
    if numbers != list(range(jobs)) or any(r["status"] != "completed" for r in records):
        raise RuntimeError(f"{tag}: not exactly one completed record per job")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    reason = SlurmCluster.unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    ways = {
        "one task per job": [],
        f"pack=true workers={args.workers}": ["hydra.launcher.pack=true", f"hydra.launcher.workers={args.workers}"],
    }
    walls: Dict[str, List[float]] = {name: [] for name in ways}
    cluster = SlurmCluster(accounting=False)
    cluster.max_array_size = 1001
    with cluster, tempfile.TemporaryDirectory(prefix="bench-pack-") as tmp:
        work = Path(tmp)
        (work / "app.py").write_text(APP)
        for rep in range(args.repeat):  # alternate, so that drift hits both alike
            for index, (name, extra) in enumerate(ways.items()):
                walls[name].append(run(work, cluster, args.jobs, extra, f"{index}-{rep}"))
                cluster.wait_idle(timeout=120)
    print(f"\n{args.jobs} trivial jobs on the test cluster (cpu partition: 2 nodes x 4 CPUs), exactly one "
          "record per job in every run")
    anchor = statistics.median(walls["one task per job"])
    for name, runs in walls.items():
        median = statistics.median(runs)
        print(f"{name:<24} wall {median:6.1f} s (runs {' '.join(f'{w:.1f}' for w in runs)})  "
              f"{anchor / median:5.2f}x vs one task per job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
