"""Search space and strategies (issue 2): grid order, lazy huge spaces, random picks, seeding.

Expected job lists are written out or computed here by plain arithmetic (divmod, decimal digits),
not taken from the engine.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, List, Sequence, Tuple

import pytest

from grid_sweeper import seeding
from grid_sweeper.dimensions import Distribution
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import parse_expression
from grid_sweeper.space import Flag, SearchSpace
from grid_sweeper.strategies import SweepPlan, grid_search, random_search

ROOT = Path(__file__).resolve().parent.parent


def make_space(pairs: Sequence[Tuple[str, str]], seed: int = 0) -> SearchSpace:
    return SearchSpace([Flag(name, parse_expression(text, name)) for name, text in pairs], seed)


def values(plan: SweepPlan) -> List[Tuple[Any, ...]]:
    """The jobs as tuples of values (flag order)."""
    return [tuple(value for _, value in job) for job in plan]


def column(plan: SweepPlan, flag: str) -> List[Any]:
    return [dict(job)[flag] for job in plan]


# =================================================================================================
# grid_search: order and types
# =================================================================================================
SMALL = [("model", "[resnet, 'bert']"), ("lr", "[0.1, 1e-2]"), ("layers", "range(1, 4)")]


def test_grid_order_first_flag_slowest_with_types() -> None:
    plan = grid_search(make_space(SMALL))
    assert plan.size == len(plan) == 12
    assert values(plan) == [
        ("resnet", 0.1, 1), ("resnet", 0.1, 2), ("resnet", 0.1, 3),
        ("resnet", 0.01, 1), ("resnet", 0.01, 2), ("resnet", 0.01, 3),
        ("bert", 0.1, 1), ("bert", 0.1, 2), ("bert", 0.1, 3),
        ("bert", 0.01, 1), ("bert", 0.01, 2), ("bert", 0.01, 3),
    ]  # fmt: skip
    assert values(plan) == list(itertools.product(["resnet", "bert"], [0.1, 0.01], [1, 2, 3]))
    for job in plan:
        assert [name for name, _ in job] == ["model", "lr", "layers"]
        model, lr, layers = (value for _, value in job)
        assert type(model) is str and type(lr) is float and type(layers) is int
    assert plan[4] == [("model", "resnet"), ("lr", 0.01), ("layers", 2)]
    assert plan[-1] == plan[11] == [("model", "bert"), ("lr", 0.01), ("layers", 3)]
    with pytest.raises(IndexError):
        plan[12]


def test_plain_values_ride_along() -> None:
    plan = grid_search(make_space([("a", "[1, 2]"), ("name", "exp"), ("b", "[x, y]"), ("on", "True")]))
    assert plan.size == 4
    assert values(plan) == [(1, "exp", "x", True), (1, "exp", "y", True),
                            (2, "exp", "x", True), (2, "exp", "y", True)]


def test_grid_includes_drawn_values_in_order() -> None:
    space = make_space([("bs", "[16, 32]"), ("lr", "uniform(0, 1, 3)")], seed=5)
    drawn = seeding.generator(5, seeding.stream_key("lr")).uniform(0, 1, 3).tolist()
    assert values(grid_search(space)) == [(bs, lr) for bs in (16, 32) for lr in drawn]


# =================================================================================================
# Huge grids: exact size, job i computed directly
# =================================================================================================
def test_1e30_grid_size_and_jobs_by_decimal_digits() -> None:
    space = make_space([(f"d{k}", "range(10)") for k in range(30)])
    plan = grid_search(space)
    assert space.size == plan.size == 10**30  # exact, not a float
    picks = [0, 1, 9, 10, 123456789012345678901234567890, 10**29, 10**30 - 1]
    picks += [random.Random(seed).randrange(10**30) for seed in range(20)]
    for i in picks:
        expected = [(f"d{k}", int(digit)) for k, digit in enumerate(str(i).zfill(30))]
        assert plan[i] == expected
        assert space.index(space.digits(i)) == i
    assert plan[-1] == [(f"d{k}", 9) for k in range(30)]
    with pytest.raises(IndexError):
        plan[10**30]


def test_1e30_mixed_radix_by_hand() -> None:
    pairs = [
        ("a", "[x, y, z]"),  # 3
        ("b", f"range({10**15})"),  # 10**15
        ("c", "range(0, 50, 10)"),  # 5: 0 10 20 30 40
        ("d", f"range({10**14}, 0, -1)"),  # 10**14: 10**14 down to 1
    ]
    space = make_space(pairs)
    plan = grid_search(space)
    assert plan.size == 3 * 10**15 * 5 * 10**14 == 15 * 10**29
    rng = random.Random(1)
    for i in [0, 1, plan.size - 1] + [rng.randrange(plan.size) for _ in range(50)]:
        rest, d = divmod(i, 10**14)
        rest, c = divmod(rest, 5)
        a, b = divmod(rest, 10**15)
        assert plan[i] == [("a", "xyz"[a]), ("b", b), ("c", 10 * c), ("d", 10**14 - d)]
        assert space.digits(i) == [a, b, c, d]
        assert space.index([a, b, c, d]) == i


def test_first_job_of_a_1e12_grid() -> None:
    plan = grid_search(make_space([(f"f{k}", "range(1000)") for k in range(4)]))
    assert plan.size == 10**12
    assert plan[0] == [("f0", 0), ("f1", 0), ("f2", 0), ("f3", 0)]
    jobs = iter(plan)  # lazy: only three jobs are made
    assert [next(jobs) for _ in range(3)] == [
        [("f0", 0), ("f1", 0), ("f2", 0), ("f3", 0)],
        [("f0", 0), ("f1", 0), ("f2", 0), ("f3", 1)],
        [("f0", 0), ("f1", 0), ("f2", 0), ("f3", 2)],
    ]
    assert plan[10**12 - 1] == [("f0", 999), ("f1", 999), ("f2", 999), ("f3", 999)]
    assert plan[1_002_003_004] == [("f0", 1), ("f1", 2), ("f2", 3), ("f3", 4)]


# =================================================================================================
# random_search
# =================================================================================================
CUBE = [("a", "range(10)"), ("b", "range(10)"), ("c", "range(10)")]  # 1000 points, index = abc


@pytest.mark.parametrize("k", [1, 50, 300, 999])  # both the rejection and the choice paths
def test_random_search_distinct_valid_reproducible(k: int) -> None:
    plan = random_search(make_space(CUBE, seed=3), k)
    assert plan.size == len(plan) == k
    jobs = values(plan)
    assert len(set(jobs)) == k  # distinct combinations
    for job, (a, b, c) in zip(range(k), jobs):
        index = plan.combination_index(job)
        assert 0 <= index < 1000
        assert (a, b, c) == (index // 100, index // 10 % 10, index % 10)
    assert values(random_search(make_space(CUBE, seed=3), k)) == jobs  # same seed, same jobs
    if k < 999:
        assert values(random_search(make_space(CUBE, seed=4), k)) != jobs


def test_random_search_1e15_points() -> None:
    space = make_space([(f"f{k}", "range(1000)") for k in range(5)], seed=11)
    plan = random_search(space, 1000)
    indices = [plan.combination_index(j) for j in range(1000)]
    assert len(set(indices)) == 1000
    assert all(0 <= i < 10**15 for i in indices)
    jobs = values(plan)
    assert len(set(jobs)) == 1000
    for index, job in zip(indices, jobs):
        assert job == tuple(int(d) for d in re.findall("...", str(index).zfill(15)))
    assert values(random_search(make_space([(f"f{k}", "range(1000)") for k in range(5)], 11), 1000)) == jobs
    # the picks spread over the space: each of the ten 10**14-blocks gets some (about 100)
    assert min(Counter(i // 10**14 for i in indices).values()) > 50


def test_random_search_beyond_64_bits() -> None:
    space = make_space([("a", "range(3)"), ("b", f"range({2**64})"), ("c", "range(7)")], seed=2)
    assert space.size == 21 * 2**64
    plan = random_search(space, 300)
    indices = [plan.combination_index(j) for j in range(300)]
    assert len(set(indices)) == 300 and all(0 <= i < space.size for i in indices)
    for index, (a, b, c) in zip(indices, values(plan)):
        assert (a * 2**64 + b) * 7 + c == index
    assert Counter(a for a, _, _ in values(plan)).keys() == {0, 1, 2}
    # the high bits of b are random too (a bug keeping 64 bits only would leave them 0)
    assert 100 < sum(b >= 2**63 for _, b, _ in values(plan)) < 200


@pytest.mark.parametrize(
    "pairs, k, bucket, buckets",
    [
        ([("a", "range(10)")], 3, lambda i: i, 10),  # choice path
        ([("a", "range(1000)")], 5, lambda i: i // 100, 10),  # rejection path, < 2**63
        ([("a", "range(3)"), ("b", f"range({2**64})")], 5, lambda i: i // 2**64, 3),  # > 2**64
    ],
)
def test_random_search_is_uniform(pairs: Any, k: int, bucket: Any, buckets: int) -> None:
    counts: Counter = Counter()
    expressions = [Flag(name, parse_expression(text)) for name, text in pairs]
    seeds = 2000
    for seed in range(seeds):
        plan = random_search(SearchSpace(expressions, seed), k)
        counts.update(bucket(plan.combination_index(j)) for j in range(k))
    expected = seeds * k / buckets
    chi2 = sum((counts[b] - expected) ** 2 / expected for b in range(buckets))
    # chi-square with buckets-1 degrees of freedom: 30 is far beyond its 99.9% quantile (27.9 for 9)
    assert chi2 < 30, counts


def test_random_search_k_at_least_size_runs_all_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [("a", "[1, 2]"), ("b", "[x, y, z]")]
    everything = set(itertools.product([1, 2], ["x", "y", "z"]))
    for k in (6, 10):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="grid_sweeper.strategies"):
            plan = random_search(make_space(pairs), k)
        assert plan.size == 6 and set(values(plan)) == everything and len(values(plan)) == 6
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and f"num_trials={k}" in warnings[0].getMessage()
        assert "6 combinations" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grid_sweeper.strategies"):
        assert random_search(make_space(pairs), 5).size == 5
    assert not caplog.records


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_random_search_rejects_bad_num_trials(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_trials"):
        random_search(make_space(CUBE), bad)


# =================================================================================================
# Fresh draws (a distribution without a count) in random_search
# =================================================================================================
FRESH = [("bs", "[16, 32, 64, 128]"), ("lr", "uniform(0, 1)")]


def fresh_numpy(seed: int, flag: str, trial: int) -> float:
    return float(seeding.generator(seed, seeding.stream_key(flag), trial).uniform(0, 1, 1)[0])


def test_fresh_values_are_drawn_per_trial(caplog: pytest.LogCaptureFixture) -> None:
    for k in (3, 4, 10):  # fewer, as many and more trials than the 4 combinations of bs
        with caplog.at_level(logging.WARNING):
            plan = random_search(make_space(FRESH, seed=21), k)
        assert plan.size == k
        lrs = column(plan, "lr")
        assert len(set(lrs)) == k  # a fresh value for every trial
        assert all(type(v) is float and 0 <= v < 1 for v in lrs)
        assert lrs == [fresh_numpy(21, "lr", trial) for trial in range(k)]
        assert set(column(plan, "bs")) <= {16, 32, 64, 128}
        if k <= 4:
            assert len(set(column(plan, "bs"))) == k  # distinct combinations of the finite flags
        assert values(random_search(make_space(FRESH, seed=21), k)) == values(plan)
        assert column(random_search(make_space(FRESH, seed=22), k), "lr") != lrs
    assert not caplog.records  # fresh draws: more trials than combinations is no waste


def test_only_fresh_flags() -> None:
    plan = random_search(make_space([("noise", "normal(0, 1)")], seed=1), 5)
    noise = column(plan, "noise")
    assert len(noise) == 5 and len(set(noise)) == 5


@pytest.mark.parametrize(
    "text",
    ["uniform(1e-5, 1e-1)", "standard_normal()", "normal(loc=0, scale=1)", "normal(0)",
     "exponential(2)", "binomial(10, 0.5)", "dirichlet([1, 2])"],
)
def test_grid_search_rejects_fresh_distribution(text: str) -> None:
    space = make_space([("bs", "[1, 2]"), ("optim.lr", text)])
    with pytest.raises(GridExpressionError) as info:
        grid_search(space)
    message = str(info.value)
    assert message.startswith("flag 'optim.lr': grid_search needs a finite list of values")
    assert "add the number of values" in message and "random_search" in message
    # the suggested fix is right: it parses as the same distribution with a count
    example = re.search(r"e\.g\. (.+?), or use strategy random_search", message)
    assert example, message
    fixed = parse_expression(example.group(1))
    original = parse_expression(text)
    assert isinstance(fixed, Distribution) and isinstance(original, Distribution)
    assert fixed.count == 5
    assert (fixed.name, fixed.args, fixed.kwargs) == (original.name, original.args, original.kwargs)
    assert grid_search(make_space([("bs", "[1, 2]"), ("optim.lr", example.group(1))])).size == 10


# =================================================================================================
# Seeding
# =================================================================================================
BASE = [("lr", "uniform(0, 1, 5)"), ("wd", "loguniform(1e-6, 1e-2, 4)"), ("noise", "normal(0, 1)")]
VARIANTS = [
    BASE,
    BASE + [("extra", "normal(0, 1, 3)")],
    [("extra", "normal(0, 1, 3)")] + BASE,
    [("bs", "[1, 2, 3]")] + BASE,
    list(reversed(BASE)),
    [p for p in BASE if p[0] != "wd"],
    [("a", "uniform(0, 1)")] + BASE,
]


def drawn(space: SearchSpace, flag: str) -> List[Any]:
    bound = space.bound[[f.name for f in space.flags].index(flag)]
    return [bound[i] for i in range(bound.size)]


def is_fresh(text: str) -> bool:
    expression = parse_expression(text)
    return isinstance(expression, Distribution) and expression.is_fresh


def test_unrelated_flags_do_not_change_a_flags_values() -> None:
    base = make_space(BASE, seed=99)
    lr = drawn(base, "lr")
    assert lr == seeding.generator(99, seeding.stream_key("lr")).uniform(0, 1, 5).tolist()
    base_noise = column(random_search(base, 12), "noise")
    for pairs in VARIANTS:
        space = make_space(pairs, seed=99)
        assert drawn(space, "lr") == lr, pairs
        if any(name == "wd" for name, _ in pairs):
            assert drawn(space, "wd") == drawn(base, "wd")
        # fresh draws depend on (seed, flag, trial) only
        assert column(random_search(space, 12), "noise") == base_noise, pairs
        finite = [(name, text) for name, text in pairs if not is_fresh(text)]
        assert sorted(set(column(grid_search(make_space(finite, 99)), "lr"))) == sorted(lr)
    assert drawn(make_space(BASE, seed=100), "lr") != lr


def test_same_seed_same_jobs_in_another_process() -> None:
    pairs = [("model", "[resnet, bert]"), ("lr", "loguniform(1e-5, 1e-1, 3)"),
             ("layers", "range(2, 8, 2)"), ("drop", "uniform(0, 0.5)"), ("cnt", "poisson(3, 2)")]
    script = textwrap.dedent(
        f"""
        import json
        from grid_sweeper.expressions import parse_expression
        from grid_sweeper.space import Flag, SearchSpace
        from grid_sweeper.strategies import grid_search, random_search
        pairs = {pairs!r}
        space = SearchSpace([Flag(n, parse_expression(t, n)) for n, t in pairs], 4242)
        finite = SearchSpace([Flag(n, parse_expression(t, n)) for n, t in pairs if n != "drop"], 4242)
        print(json.dumps({{"random": list(random_search(space, 20)),
                          "grid": list(grid_search(finite))}}))
        """
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")  # hash randomization must not matter
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True, timeout=60)
    theirs = json.loads(result.stdout)
    space = make_space(pairs, seed=4242)
    finite = make_space([p for p in pairs if p[0] != "drop"], seed=4242)
    ours = json.loads(json.dumps({"random": list(random_search(space, 20)),
                                  "grid": list(grid_search(finite))}))
    assert theirs == ours
    assert len(ours["random"]) == 20 and len(ours["grid"]) == 2 * 3 * 3 * 2
    assert len({json.dumps(job) for job in ours["random"]}) == 20
