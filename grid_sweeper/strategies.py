"""Search strategies: which combinations of a space become jobs, and in what order.

`grid_search`: every combination, in order. `random_search`: `num_trials` distinct combinations
picked uniformly without materializing the product. `none` is handled by the callers: the
flags stay text and exactly one job runs.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, List, Sequence, Tuple

from grid_sweeper import distributions, seeding
from grid_sweeper.dimensions import Distribution
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.space import SearchSpace

log = logging.getLogger(__name__)

STRATEGIES = ("grid_search", "random_search", "none")
#: random_search keeps its picks in memory: at most this many, unless they cover the whole space.
MAX_RANDOM_TRIALS = 1_000_000


class SweepPlan(Sequence[List[Tuple[str, Any]]]):
    """The job list of a sweep: lazy, indexable, with an exact `size`."""

    def __init__(self, space: SearchSpace, strategy: str, picks: Any = None) -> None:
        self.space = space
        self.strategy = strategy
        self._picks = picks  # None: every combination in order; else a list of indices
        self.size = space.size if picks is None else len(picks)

    @property
    def seed(self) -> int:
        return self.space.seed

    @property
    def draws(self) -> bool:
        """Whether anything in this plan was drawn at random: only then is the seed worth printing."""
        picked = self._picks is not None and not isinstance(self._picks, range)
        return picked or self.space.draws

    def __len__(self) -> int:
        return self.size

    def combination_index(self, job: int) -> int:
        if not 0 <= job < self.size:
            raise IndexError(f"job {job} out of range for a sweep of {self.size}")
        return job if self._picks is None else int(self._picks[job])

    def __getitem__(self, job: int) -> List[Tuple[str, Any]]:  # type: ignore[override]
        if job < 0:
            job += self.size
        return self.space.combination(self.combination_index(job), trial=job)

    def __iter__(self) -> Iterator[List[Tuple[str, Any]]]:
        job = 0
        while job < self.size:
            yield self[job]
            job += 1


def grid_search(space: SearchSpace) -> SweepPlan:
    """Every combination, first flag slowest."""
    fresh = space.fresh_flags
    if fresh:
        flag = fresh[0]
        expression = next(f.expression for f in space.flags if f.name == flag)
        text = expression.describe()  # type: ignore[union-attr]
        raise GridExpressionError(
            "grid_search needs a finite list of values, but this distribution has no count",
            text=text,
            flag=flag,
            hint=(f"add the number of values as the last argument, e.g. {_with_count(expression)}, "
                  "or use strategy random_search to draw a fresh value per trial"),
        )
    return SweepPlan(space, "grid_search")


def _with_count(expression: Distribution, count: int = 5) -> str:
    """The distribution's text with a count that parses as one (positional only when it can)."""
    base = expression.describe()[:-1]
    separator = ", " if expression.args or expression.kwargs else ""
    params = distributions.DISTRIBUTIONS[expression.name].params
    positional = not expression.kwargs and len(expression.args) == len(params)
    return f"{base}{separator}{count if positional else f'size={count}'})"


def random_search(space: SearchSpace, num_trials: int) -> SweepPlan:
    """`num_trials` distinct combinations picked uniformly (all of them if there are fewer)."""
    if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
        raise ValueError(f"num_trials must be a positive int, got {num_trials!r}")
    size = space.size
    if num_trials >= size and not space.fresh_flags:
        log.warning("num_trials=%d >= the %d combinations of the space: running all of them",
                    num_trials, size)
        return SweepPlan(space, "random_search", range(size))  # lazy, whatever the size
    if num_trials == size:  # with fresh draws, every trial still differs
        return SweepPlan(space, "random_search", range(size))
    if num_trials > MAX_RANDOM_TRIALS:
        raise ValueError(
            f"num_trials={num_trials:,} is above the ceiling of {MAX_RANDOM_TRIALS:,} trials that "
            "random_search picks (its picks are kept in memory); use grid_search to run every "
            f"combination of the {size:,}, or split the search into several sweeps")
    rng = seeding.generator(space.seed, seeding.PICK_STREAM)
    if space.fresh_flags and num_trials > size:
        return SweepPlan(space, "random_search", _with_replacement(rng, size, num_trials))
    return SweepPlan(space, "random_search", distinct_indices(rng, size, num_trials))


def _with_replacement(rng: Any, size: int, count: int) -> List[int]:
    return [int(i) for i in rng.integers(0, size, count)]


def distinct_indices(rng: Any, size: int, count: int) -> List[int]:
    """`count` distinct ints drawn uniformly from [0, size), in draw order; memory O(count)."""
    if size <= 4 * count:
        return [int(i) for i in rng.choice(size, count, replace=False)]
    picked: List[int] = []
    seen = set()
    while len(picked) < count:
        for candidate in _uniform_ints(rng, size, count - len(picked)):
            if candidate not in seen:
                seen.add(candidate)
                picked.append(candidate)
                if len(picked) == count:
                    break
    return picked


def _uniform_ints(rng: Any, size: int, count: int) -> List[int]:
    """`count` independent uniform ints in [0, size), for any size (beyond 64 bits too)."""
    if size < 2**63:
        return [int(i) for i in rng.integers(0, size, count)]
    bits = size.bit_length()
    words = (bits + 63) // 64
    result: List[int] = []
    while len(result) < count:
        raw = rng.integers(0, 2**64, size=(count, words), dtype="uint64", endpoint=False)
        for row in raw:
            value = 0
            for word in row:
                value = (value << 64) | int(word)
            value >>= words * 64 - bits
            if value < size:  # rejection keeps it uniform
                result.append(value)
    return result[:count]
