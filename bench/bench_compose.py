"""Job configs of a 10^4-job grid: Hydra's `load_sweep_config` per job vs the compose cache.

Same app (typed structured config, YAML, a config group: tests/apps/compose), same process, same
run. The grid is lr (100 values) x epochs (50) x model (small, large): 10^4 jobs. Hydra's
`load_sweep_config` is timed on a sample of jobs (all 10^4 would take minutes) and its total is
projected; the cache checks and makes every job's config for real:

- check: what `hydra/sweeper=grid` does with every job of a batch before launching it;
- compose: a job's whole config (`hydra` included), as grid_local's jobs and grid_slurm's
  submission make it.

    python bench/bench_compose.py [--sample 100]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple

APP_DIR = Path(__file__).resolve().parents[1] / "tests" / "apps" / "compose"


def master_config(sweep_dir: str) -> Tuple[Any, Any]:
    """(config loader, multirun master config) of the compose test app."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import RunMode

    sys.path.insert(0, str(APP_DIR))
    import schema  # the app's structured config

    schema.register()
    os.environ.setdefault("COMPOSE_TEST_ENV", "bench")
    hydra = Hydra.create_main_hydra2(
        task_name="bench", config_search_path=create_config_search_path(f"file://{APP_DIR / 'conf'}")
    )
    setup_globals()
    cfg = hydra.compose_config(config_name="config", overrides=[f"hydra.sweep.dir={sweep_dir}"],
                               run_mode=RunMode.MULTIRUN)
    return hydra.config_loader, cfg


def grid() -> List[List[str]]:
    return [[f"lr={lr / 1000}", f"epochs={epochs}", f"model={model}"]
            for lr in range(1, 101) for epochs in range(1, 51) for model in ("small", "large")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=100, help="jobs composed by Hydra")
    args = parser.parse_args()
    from hydra_plugins.hydra_grid_sweeper._compose import ComposeCache

    loader, master = master_config("/tmp/bench-compose")
    jobs = grid()
    step = max(1, len(jobs) // args.sample)
    sample = jobs[::step][: args.sample]
    start = time.process_time()
    for job in sample:
        loader.load_sweep_config(master, job)
    hydra_ms = 1000.0 * (time.process_time() - start) / len(sample)

    cache = ComposeCache(loader, master)
    start = time.process_time()
    for job in jobs:
        cache.check(job)
    check_s = time.process_time() - start
    start = time.process_time()
    for job in jobs:
        cache.compose(job)
    compose_s = time.process_time() - start
    n = len(jobs)
    projected = hydra_ms * n / 1000.0
    print(f"CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}; {n} jobs, "
          f"{len(cache._bases)} group choices (CPU seconds of this process)")
    print(f"  load_sweep_config : {hydra_ms:7.2f} ms a job ({len(sample)} jobs) -> {projected:7.1f} s "
          f"for {n} (projected)")
    print(f"  cache check       : {1000 * check_s / n:7.2f} ms a job -> {check_s:7.1f} s for {n} "
          f"({projected / check_s:.0f}x faster; goal: <= 30 s)")
    print(f"  cache compose     : {1000 * compose_s / n:7.2f} ms a job -> {compose_s:7.1f} s for {n} "
          f"({projected / compose_s:.0f}x faster)")


if __name__ == "__main__":
    main()
