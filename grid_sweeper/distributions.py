"""The allowlist of random distributions and how to draw from them with numpy's Generator.

Names are looked up in this table only, never as arbitrary attributes. numpy is imported lazily
so that the table can be read (e.g. by Hydra's grammar registration) without importing numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class DistributionInfo:
    """A distribution's parameters: positional ones (in order) and keyword-only extras."""

    name: str
    params: Tuple[str, ...]
    required: int
    keyword_only: Tuple[str, ...] = ()

    @property
    def count_name(self) -> str:
        """What the signature calls the count: n, or count where a parameter is named n."""
        return "count" if "n" in self.params else "n"

    @property
    def signature(self) -> str:
        names = list(self.params) + [self.count_name]
        return f"{self.name}({', '.join(names)})"


def _info(name: str, params: str = "", required: int = -1, keyword_only: str = "") -> DistributionInfo:
    names = tuple(p for p in params.split() if p)
    extra = tuple(p for p in keyword_only.split() if p)
    return DistributionInfo(name, names, len(names) if required < 0 else required, extra)


# Every sampling method of numpy.random.Generator (minus choice/shuffle/permutation, which are
# not distributions and whose names Hydra's grammar owns), plus randint and loguniform.
DISTRIBUTIONS: Dict[str, DistributionInfo] = {
    d.name: d
    for d in [
        _info("beta", "a b"),
        _info("binomial", "n p"),
        _info("chisquare", "df"),
        _info("dirichlet", "alpha"),
        _info("exponential", "scale", 0),
        _info("f", "dfnum dfden"),
        _info("gamma", "shape scale", 1),
        _info("geometric", "p"),
        _info("gumbel", "loc scale", 0),
        _info("hypergeometric", "ngood nbad nsample"),
        _info("integers", "low high", 1, "endpoint"),
        _info("laplace", "loc scale", 0),
        _info("logistic", "loc scale", 0),
        _info("lognormal", "mean sigma", 0),
        _info("logseries", "p"),
        _info("multinomial", "n pvals"),
        _info("multivariate_hypergeometric", "colors nsample", 2, "method"),
        _info("multivariate_normal", "mean cov", 2, "check_valid tol method"),
        _info("negative_binomial", "n p"),
        _info("noncentral_chisquare", "df nonc"),
        _info("noncentral_f", "dfnum dfden nonc"),
        _info("normal", "loc scale", 0),
        _info("pareto", "a"),
        _info("poisson", "lam", 0),
        _info("power", "a"),
        _info("random"),
        _info("rayleigh", "scale", 0),
        _info("standard_cauchy"),
        _info("standard_exponential"),
        _info("standard_gamma", "shape"),
        _info("standard_normal"),
        _info("standard_t", "df"),
        _info("triangular", "left mode right"),
        _info("uniform", "low high", 0),
        _info("vonmises", "mu kappa"),
        _info("wald", "mean scale"),
        _info("weibull", "a"),
        _info("zipf", "a"),
        # numpy's legacy name for integers (high exclusive), and a log-uniform extension.
        _info("randint", "low high", 1),
        _info("loguniform", "low high"),
    ]
}


class DistributionParameterError(ValueError):
    """numpy rejected a distribution's parameters."""


def _to_python(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values (float, int, bool, list)."""
    tolist = getattr(value, "tolist", None)
    return tolist() if tolist is not None else value


def draw(
    rng: np.random.Generator,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    count: int,
) -> List[Any]:
    """`count` values of distribution `name`, as plain Python values."""
    import numpy as np

    info = DISTRIBUTIONS[name]
    if name == "zipf" and _zipf_only_ones(args, kwargs):
        return [1] * count
    try:
        with np.errstate(all="ignore"):
            if name == "loguniform":
                low, high = _loguniform_bounds(args, kwargs)
                raw = np.exp(rng.uniform(np.log(low), np.log(high), size=count))
            else:
                method = "integers" if name == "randint" else info.name
                raw = getattr(rng, method)(*args, **kwargs, size=count)
    except (ValueError, TypeError, OverflowError) as error:
        raise DistributionParameterError(str(error).strip() or type(error).__name__) from None
    return [_to_python(value) for value in raw]


ZIPF_ONLY_ONES = 1025.0  # from this `a` on, 2**(a - 1) overflows a double


def _zipf_only_ones(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """Whether zipf's `a` is so large that every draw is 1 (P(X > 1) < 2**-1024): numpy 2.0, the
    last for Python 3.9, then loops forever (its rejection test divides inf by inf); newer numpy
    returns 1s."""
    a = kwargs.get("a", args[0] if args else None)
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return False
    return a >= ZIPF_ONLY_ONES


def _loguniform_bounds(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Tuple[float, float]:
    values = dict(zip(("low", "high"), args))
    values.update(kwargs)
    low, high = values.get("low"), values.get("high")
    for label, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ValueError(f"{label} must be a number")
    if not 0 < low < high:  # type: ignore[operator]
        raise ValueError("loguniform needs 0 < low < high")
    return float(low), float(high)  # type: ignore[arg-type]
