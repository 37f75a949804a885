"""What a flag expression means: a plain value or a sweep dimension.

Dimensions are unseeded descriptions. `bind()` turns one into values for a given seed: a finite
sequence (`size`, `[i]`, computed lazily) or, for a distribution without a count, a sampler that
draws a fresh value per trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from grid_sweeper import distributions, seeding


@dataclass(frozen=True)
class Fixed:
    """A plain value: every job gets it."""

    value: Any


@dataclass(frozen=True)
class Choices:
    """Sweep over listed values."""

    values: Tuple[Any, ...]


@dataclass(frozen=True)
class RangeValues:
    """range(start, stop, step): Python semantics for ints, Hydra's for floats."""

    start: Union[int, float]
    stop: Union[int, float]
    step: Union[int, float] = 1

    @property
    def is_float(self) -> bool:
        return any(isinstance(x, float) for x in (self.start, self.stop, self.step))

    @property
    def size(self) -> int:
        # Exact for any magnitude: len(range(...)) overflows beyond sys.maxsize, and Decimal
        # division rounds to 28 digits. Floats count as the decimals they print as (0.1 is 1/10).
        if not self.is_float:
            return max(0, -((self.start - self.stop) // self.step))  # ceil((stop - start) / step)
        start, stop, step = (_exact(x) for x in (self.start, self.stop, self.step))
        return max(0, math.ceil((stop - start) / step))

    def __getitem__(self, index: int) -> Union[int, float]:
        if not self.is_float:
            return self.start + index * self.step  # type: ignore[return-value]
        return float(_exact(self.start) + index * _exact(self.step))


@dataclass(frozen=True)
class Distribution:
    """NAME(params..., n): n draws; without a count, a fresh draw per trial."""

    name: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)
    count: Optional[int] = None

    @property
    def is_fresh(self) -> bool:
        return self.count is None

    def describe(self) -> str:
        parts = [_show(a) for a in self.args]
        parts += [f"{k}={_show(v)}" for k, v in self.kwargs.items()]
        if self.count is not None:
            parts.append(str(self.count))
        return f"{self.name}({', '.join(parts)})"

    def __hash__(self) -> int:
        return hash((self.name, repr(self.args), repr(sorted(self.kwargs.items())), self.count))


def _exact(value: Union[int, float]) -> Fraction:
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


Dimension = Union[Choices, RangeValues, Distribution]
Expression = Union[Fixed, Dimension]


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class FreshSampler:
    """Draws a distribution's value for one trial, independently of every other trial."""

    def __init__(self, dimension: Distribution, seed: int, flag: str) -> None:
        self.dimension = dimension
        self.seed = seed
        self.key = seeding.stream_key(flag)

    def sample(self, trial: int) -> Any:
        rng = seeding.generator(self.seed, self.key, trial)
        d = self.dimension
        return distributions.draw(rng, d.name, d.args, d.kwargs, 1)[0]


class DrawnValues(Sequence[Any]):
    """A distribution's `count` values, drawn on first use from the flag's own stream."""

    def __init__(self, dimension: Distribution, seed: int, flag: str) -> None:
        assert dimension.count is not None
        self.dimension = dimension
        self.seed = seed
        self.flag = flag
        self._values: Optional[List[Any]] = None

    def __len__(self) -> int:
        return self.dimension.count  # type: ignore[return-value]

    @property
    def size(self) -> int:
        return len(self)

    def _drawn(self) -> List[Any]:
        if self._values is None:
            d = self.dimension
            rng = seeding.generator(self.seed, seeding.stream_key(self.flag))
            self._values = distributions.draw(rng, d.name, d.args, d.kwargs, len(self))
        return self._values

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        return self._drawn()[index]


class ListValues(Sequence[Any]):
    """Listed values (or a fixed value, as a list of one) with a `size`."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = tuple(values)
        self.size = len(self.values)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        return self.values[index]


Bound = Union[ListValues, RangeValues, DrawnValues, FreshSampler]


def bind(expression: Expression, seed: int, flag: str) -> Bound:
    """The values of `expression` for `flag` under `seed`."""
    if isinstance(expression, Fixed):
        return ListValues([expression.value])
    if isinstance(expression, Choices):
        return ListValues(expression.values)
    if isinstance(expression, RangeValues):
        return expression
    if expression.is_fresh:
        return FreshSampler(expression, seed, flag)
    return DrawnValues(expression, seed, flag)
