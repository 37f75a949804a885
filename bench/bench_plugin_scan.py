"""What the plugin costs every Hydra app in its environment: Hydra's plugin scan, with and without it.

Each sample is a fresh Python process that imports Hydra as `@hydra.main` does, then times
`Plugins.instance()` (the scan: it executes every module under `hydra_plugins`). Without the
plugin means the same interpreter and packages with the plugin's dirs dropped from sys.path
(tests/without_plugin.py does the same for the behaviour tests). Samples alternate between the
two, bytecode is compiled first (as `pip install` does), and the figure is the difference of the
medians of CPU time, which other load on the machine disturbs less than wall time.

    python bench/bench_plugin_scan.py [--samples 40] [--before CHECKOUT_OF_AN_EARLIER_COMMIT]

Goal: the plugin adds at most 3 ms to the scan.
"""
import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, os, sys, time
if os.environ.get("HIDE_GRID_PLUGIN") or os.environ.get("GRID_PLUGIN_ROOT"):
    plugin = os.path.join("hydra_plugins", "hydra_grid_sweeper")
    sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.getcwd(), plugin))]
if os.environ.get("GRID_PLUGIN_ROOT"):  # another checkout of the plugin, e.g. an earlier commit
    sys.path.insert(0, os.environ["GRID_PLUGIN_ROOT"])
import hydra, hydra._internal.utils, hydra.core.utils  # what @hydra.main imports before the scan
from hydra.core.plugins import Plugins
before = set(sys.modules)
wall, cpu = time.perf_counter(), time.process_time()
Plugins.instance()
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
ours = sorted(m for m in set(sys.modules) - before if "grid_sweeper" in m)
print(json.dumps({"cpu_ms": cpu * 1000, "wall_ms": wall * 1000, "modules": ours}))
"""


def sample(hidden: bool, root: str = "") -> Dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if hidden:
        env["HIDE_GRID_PLUGIN"] = "1"
    if root:
        env["GRID_PLUGIN_ROOT"] = root
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd="/", capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--before", default="", help="a checkout of an earlier commit, measured too")
    args = parser.parse_args()
    for root in (str(ROOT), args.before):
        if root:
            compileall.compile_dir(os.path.join(root, "hydra_plugins"), quiet=1)
            compileall.compile_dir(os.path.join(root, "grid_sweeper"), quiet=1)
    runs: Dict[str, List[Dict]] = {"without plugin": [], "with plugin": []}
    if args.before:
        runs["earlier checkout"] = []
    for _ in range(args.samples):
        runs["without plugin"].append(sample(hidden=True))
        runs["with plugin"].append(sample(hidden=False))
        if args.before:
            runs["earlier checkout"].append(sample(hidden=False, root=args.before))
    medians = {}
    for name, samples in runs.items():
        cpu = statistics.median(s["cpu_ms"] for s in samples)
        wall = statistics.median(s["wall_ms"] for s in samples)
        medians[name] = cpu
        print(f"{name:>15}: scan CPU median {cpu:6.2f} ms, wall median {wall:6.2f} ms "
              f"({len(samples)} processes)")
    print(f"modules the scan loads from this project: {', '.join(runs['with plugin'][0]['modules'])}")
    if args.before:
        print(f"the earlier checkout added {medians['earlier checkout'] - medians['without plugin']:.2f} ms")
    added = medians["with plugin"] - medians["without plugin"]
    print(f"the plugin adds {added:.2f} ms of CPU to every Hydra app's start "
          f"({medians['with plugin'] / medians['without plugin']:.2f}x the scan without it); goal <= 3 ms")


if __name__ == "__main__":
    main()
