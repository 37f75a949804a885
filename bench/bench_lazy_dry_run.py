"""The Hydra path stays lazy: a dry run's time and memory do not grow with the size of the space.

`random_search num_trials=5` over two of Hydra's own ranges (`+a=range(N) +b=range(N)`) and a
Grid distribution, dry-run through `python app.py -m hydra/sweeper=grid`, for N = 10^2 (the
anchor), 10^6 and 10^12 (a 10^24-point space), in the same run. Before this round Hydra's range
became a tuple of strings (range(10^8): 3 GB, MemoryError) and Grid expressions carried example
draws made at parse time.

    python bench/bench_lazy_dry_run.py [--repeat 3]

Goal: the 10^12 dry run in under 2 s, at about the anchor's time and memory.
"""
import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

APP = Path(__file__).parent / "apps" / "first_job.py"


def dry_run(side: int, workdir: str) -> Tuple[float, int]:
    """(seconds, peak RSS of the child in KiB) of one dry run."""
    args = [sys.executable, str(APP), "-m", "hydra/sweeper=grid", "hydra.sweeper.dry_run=true",
            "hydra.sweeper.strategy=random_search", "hydra.sweeper.num_trials=5", "hydra.sweeper.seed=1",
            f"+a=range({side})", f"+b=range({side})", "+c=loguniform(1e-5,1e-1)",
            f"hydra.sweep.dir={workdir}/s{side}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or "5 job(s)" not in proc.stdout:
        raise SystemExit(f"dry run failed for N={side}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sides = [10**2, 10**6, 10**12]
    with tempfile.TemporaryDirectory() as workdir:
        times: dict = {side: [] for side in sides}
        peaks: dict = {}
        for _ in range(args.repeat):
            for side in sides:  # interleaved, so that machine load hits every size alike
                seconds, peak = dry_run(side, workdir)
                times[side].append(seconds)
                peaks[side] = peak
    anchor = statistics.median(times[sides[0]])
    rows: List[str] = []
    for side in sides:
        median = statistics.median(times[side])
        digits = len(str(side)) - 1
        rows.append(f"N=10^{digits:<3} space 10^{2 * digits:<3} dry run median {median:5.2f} s "
                    f"({median / anchor:4.2f}x the N=10^2 anchor), "
                    f"children's peak RSS so far {peaks[side] / 1024:.0f} MiB")
    print("\n".join(rows))
    print("goal: the 10^12 dry run under 2 s:", "met" if statistics.median(times[sides[-1]]) < 2 else "NOT met")


if __name__ == "__main__":
    main()
