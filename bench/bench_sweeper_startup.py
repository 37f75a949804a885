"""Sweeper start-up: time from the command until the first job of a 10^4-job grid starts.

grid sweeper vs Hydra's BasicSweeper, same app, same machine, same run. Both check every job's
config before launching the first: BasicSweeper composes each with Hydra's `load_sweep_config`
(~35 ms a job here), the grid sweeper enumerates lazily and checks each from its compose cache
(each distinct override line once: ~0.02 ms a job; it logs how long the check took, printed
here too).

    python bench/bench_sweeper_startup.py [--side 100] [--repeat 3] [--basic-repeat 1]

`--basic-repeat 0` skips BasicSweeper (~6 min a run).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

APP = Path(__file__).parent / "apps" / "first_job.py"


def first_job_after(sweeper_args: List[str], side: int, workdir: str) -> Tuple[float, float]:
    """(seconds until the first job started, seconds the sweeper spent checking job configs)."""
    env = dict(os.environ, BENCH_STARTED=repr(time.time()))
    proc = subprocess.run(
        [sys.executable, str(APP), "-m", *sweeper_args, f"+a=range({side})", f"+b=range({side})",
         f"hydra.sweep.dir={workdir}/{time.time_ns()}"],
        env=env, capture_output=True, text=True, check=False,
    )
    checked = re.search(r"Checked the configs of \d+ job\(s\) in ([0-9.]+) s", proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("FIRST_JOB_AFTER"):
            return float(line.split()[1]), float(checked.group(1)) if checked else float("nan")
    raise RuntimeError(f"no job started:\n{proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=100, help="grid is side x side jobs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the grid sweeper")
    parser.add_argument("--basic-repeat", type=int, default=1, help="runs of BasicSweeper (~6 min each)")
    args = parser.parse_args()
    jobs = args.side**2
    with tempfile.TemporaryDirectory() as workdir:
        grid = [first_job_after(["hydra/sweeper=grid"], args.side, workdir) for _ in range(args.repeat)]
        basic = [first_job_after([], args.side, workdir)[0] for _ in range(args.basic_repeat)]
    g = statistics.median(t for t, _ in grid)
    print(f"time until the first of {jobs} jobs starts (median; whole command, Python start included):")
    print(f"  grid sweeper : {g:8.3f} s, of which checking all {jobs} job configs "
          f"{statistics.median(c for _, c in grid):.2f} s (goal: <= 30 s)")
    if basic:
        b = statistics.median(basic)
        print(f"  BasicSweeper : {b:8.3f} s")
        print(f"  ratio        : {b / g:8.1f}x faster")


if __name__ == "__main__":
    main()
