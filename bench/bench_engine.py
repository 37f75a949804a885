"""Benchmark of the Grid engine's lazy search space against the naive approach.

Run: python bench/bench_engine.py

Measures, from flag texts to jobs (parsing included):
  - grid_search over 10^12 points: time to the first job, peak memory;
  - random_search, k=1000 over 10^15 points: time to all 1000 jobs, peak memory;
  - both again over 10^6 points, next to the naive approach that materializes the product
    (grid: `list(itertools.product(...))[0]`, as a sweeper that needs the job list and its length;
    random: `random.sample(list(itertools.product(...)), 1000)`), with the ratios naive / ours.
Times are the best of a few runs; peak memory is measured in a separate run under tracemalloc
(which slows that run down, so it is not timed).
"""
from __future__ import annotations

import gc
import itertools
import platform
import random
import sys
import time
import tracemalloc
from typing import Any, Callable, List, Tuple

import numpy as np

from grid_sweeper.expressions import parse_expression
from grid_sweeper.space import Flag, SearchSpace
from grid_sweeper.strategies import grid_search, random_search

SEED = 1234
K = 1000


def flags(count: int, per_flag: int = 1000) -> List[Tuple[str, str]]:
    return [(f"f{i}", f"range({per_flag})") for i in range(count)]


def space(pairs: List[Tuple[str, str]]) -> SearchSpace:
    return SearchSpace([Flag(name, parse_expression(text, name)) for name, text in pairs], SEED)


def ours_first_job(pairs: List[Tuple[str, str]]) -> Callable[[], Any]:
    return lambda: grid_search(space(pairs))[0]


def ours_random(pairs: List[Tuple[str, str]]) -> Callable[[], Any]:
    return lambda: list(random_search(space(pairs), K))


def naive_values(pairs: List[Tuple[str, str]]) -> List[List[int]]:
    return [list(range(int(text[len("range(") : -1]))) for _, text in pairs]


def naive_first_job(pairs: List[Tuple[str, str]]) -> Callable[[], Any]:
    return lambda: list(itertools.product(*naive_values(pairs)))[0]


def naive_random(pairs: List[Tuple[str, str]]) -> Callable[[], Any]:
    def run() -> Any:
        random.seed(SEED)
        return random.sample(list(itertools.product(*naive_values(pairs))), K)

    return run


def measure(function: Callable[[], Any], repeats: int) -> Tuple[float, int]:
    """(best wall time in seconds, peak traced memory in bytes)."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
        del result
    gc.collect()
    tracemalloc.start()
    result = function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return best, peak


def show_time(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms" if seconds < 10 else f"{seconds:9.1f} s "


def show_memory(size: int) -> str:
    return f"{size / 2**20:9.3f} MiB" if size >= 2**20 else f"{size / 2**10:9.1f} KiB"


def row(label: str, seconds: float, peak: int) -> None:
    print(f"  {label:<56} {show_time(seconds)}   peak {show_memory(peak)}")


def main() -> None:
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    parse_expression("uniform(0, 1, 1)")  # import numpy and warm the parser: not part of any timing

    print("\nours, at scale")
    huge_grid = flags(4)  # 1000^4 = 10^12 points
    huge_random = flags(5)  # 1000^5 = 10^15 points
    assert space(huge_grid).size == 10**12 and space(huge_random).size == 10**15
    row("grid_search 10^12 points: first job", *measure(ours_first_job(huge_grid), 20))
    row(f"random_search 10^15 points: k={K}, all jobs", *measure(ours_random(huge_random), 5))

    small = flags(2)  # 1000^2 = 10^6 points
    print("\n10^6 points, ours against the naive approach")
    ours_grid = measure(ours_first_job(small), 20)
    naive_grid = measure(naive_first_job(small), 3)
    ours_pick = measure(ours_random(small), 5)
    naive_pick = measure(naive_random(small), 3)
    row("ours  grid_search: first job", *ours_grid)
    row("naive list(itertools.product(...))[0]", *naive_grid)
    row(f"ours  random_search: k={K}, all jobs", *ours_pick)
    row(f"naive random.sample(list(itertools.product(...)), {K})", *naive_pick)

    print("\nratios naive / ours on 10^6 points (higher: ours better)")
    print(f"  first job:     time x{naive_grid[0] / ours_grid[0]:,.0f}   "
          f"memory x{naive_grid[1] / ours_grid[1]:,.0f}")
    print(f"  random k={K}: time x{naive_pick[0] / ours_pick[0]:,.1f}   "
          f"memory x{naive_pick[1] / ours_pick[1]:,.1f}")
    per_job = {n: sys.getsizeof(tuple(range(n))) + 8 for n in (4, 5)}  # the tuple + its list slot
    print("\n(the naive approach cannot do 10^12 or 10^15 points: its list alone would take "
          f"~{10**12 * per_job[4] / 2**40:,.0f} TiB and ~{10**15 * per_job[5] / 2**50:,.0f} PiB)")


if __name__ == "__main__":
    sys.exit(main())
