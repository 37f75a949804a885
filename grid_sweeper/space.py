"""A search space: the ordered flags' values, enumerated lazily in mixed radix.

The first flag varies slowest (Hydra's order). The size is an exact Python int however large;
combination `i` is computed in O(number of flags) without materializing the product.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

from grid_sweeper import seeding
from grid_sweeper.dimensions import Bound, DrawnValues, Expression, FreshSampler, bind


@dataclass(frozen=True)
class Flag:
    """One flag of a sweep: its name and what its text means."""

    name: str
    expression: Expression


def _check_unique(flags: Sequence[Flag]) -> None:
    """A flag given twice is an error: which of its values to sweep would be a guess."""
    seen = set()
    for flag in flags:
        if flag.name in seen:
            from grid_sweeper.errors import GridExpressionError

            raise GridExpressionError(
                "given more than once", text=flag.name, flag=flag.name,
                hint="give each flag once; one list sweeps several values, e.g. beta=[1,2,3,4]")
        seen.add(flag.name)


class SearchSpace:
    """The Cartesian product of the flags' finite values, plus per-trial fresh draws."""

    def __init__(self, flags: Sequence[Flag], seed: int) -> None:
        self.flags = list(flags)
        self.seed = seeding.check_seed(seed)
        _check_unique(self.flags)
        self.bound: List[Bound] = [bind(f.expression, seed, f.name) for f in self.flags]
        self.size = 1
        for flag, values in zip(self.flags, self.bound):
            if not isinstance(values, FreshSampler):
                if values.size == 0:
                    raise ValueError(f"flag '{flag.name}' has no values to sweep")
                self.size *= values.size

    @property
    def fresh_flags(self) -> List[str]:
        """Flags drawn afresh per trial (distributions without a count)."""
        return [f.name for f, b in zip(self.flags, self.bound) if isinstance(b, FreshSampler)]

    @property
    def draws(self) -> bool:
        """Whether any flag's values are drawn at random (so the seed matters)."""
        return any(isinstance(b, (FreshSampler, DrawnValues)) for b in self.bound)

    def digits(self, index: int) -> List[int]:
        """Per-flag value positions of combination `index` (fresh flags get 0)."""
        if not 0 <= index < self.size:
            raise IndexError(f"combination {index} out of range for a space of {self.size}")
        positions = [0] * len(self.bound)
        for k in range(len(self.bound) - 1, -1, -1):
            values = self.bound[k]
            if isinstance(values, FreshSampler):
                continue
            index, positions[k] = divmod(index, values.size)
        return positions

    def index(self, positions: Sequence[int]) -> int:
        """Inverse of `digits`."""
        result = 0
        for values, position in zip(self.bound, positions):
            if isinstance(values, FreshSampler):
                continue
            if not 0 <= position < values.size:
                raise IndexError(f"position {position} out of range")
            result = result * values.size + position
        return result

    def combination(self, index: int, trial: int = 0) -> List[Tuple[str, Any]]:
        """(flag, value) pairs of combination `index`; fresh flags drawn for `trial`."""
        pairs = []
        for flag, values, position in zip(self.flags, self.bound, self.digits(index)):
            if isinstance(values, FreshSampler):
                pairs.append((flag.name, values.sample(trial)))
            else:
                pairs.append((flag.name, values[position]))
        return pairs
