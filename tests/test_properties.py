"""Property tests (hypothesis) of the engine: parsing is total, digits/index are a bijection,
random picks are distinct and in range for any size."""
from __future__ import annotations

import itertools
import os
from typing import Any, List

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid_sweeper import distributions
from grid_sweeper.dimensions import Choices, Distribution, Fixed, RangeValues
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import KNOWN_FUNCTIONS, parse_expression
from grid_sweeper.space import Flag, SearchSpace
from grid_sweeper.strategies import distinct_indices, random_search

# GRID_PROPERTY_EXAMPLES=20000 for a long hunt; the default keeps the file at about a second
EXAMPLES = int(os.environ.get("GRID_PROPERTY_EXAMPLES", "150"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_parse(text: str) -> None:
    """`text` parses to an expression or raises GridExpressionError; nothing else."""
    try:
        expression = parse_expression(text, "flag")
    except GridExpressionError as error:
        message = str(error)
        assert message.startswith("flag 'flag': ")
        assert error.text == text
        if error.position is not None:
            assert 0 <= error.position <= len(text)
            assert error.position + error.length <= max(len(text), error.position + 1)
        return
    assert isinstance(expression, (Fixed, Choices, RangeValues, Distribution))
    if isinstance(expression, Choices):
        assert len(expression.values) >= 1
    if isinstance(expression, RangeValues):
        assert expression.size >= 1


# -- near-valid expressions -----------------------------------------------------------------------
numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "-1", "0.5", ".5", "1e-2", "-3.5E+4", "1e400", "2", "3", "10"]),
)
words = st.one_of(
    st.sampled_from(["True", "False", "true", "false", "None", "null", "bert", "nan", "inf", "a_b"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,8}", fullmatch=True),
)
quoted = st.text(max_size=8).map(lambda s: repr(s))
scalars = st.one_of(numbers, words, quoted)


lists = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
    max_leaves=8,
)
names = st.one_of(
    st.sampled_from(KNOWN_FUNCTIONS),
    st.sampled_from(KNOWN_FUNCTIONS).map(lambda n: n[:-1] + "x"),  # a typo
    st.sampled_from(["__import__", "eval", "exec", "getattr", "os.system", "open", "choice"]),
)
arguments = st.one_of(numbers, lists, quoted, words)
keyword_names = st.sampled_from(
    ["size", "loc", "scale", "low", "high", "n", "p", "lam", "a", "b", "endpoint", "method", "bogus"]
)


@st.composite
def calls(draw: Any) -> str:
    name = draw(names)
    positional = draw(st.lists(arguments, max_size=4))
    keywords = draw(st.lists(st.tuples(keyword_names, arguments), max_size=2))
    parts = positional + [f"{key}={value}" for key, value in keywords]
    return f"{name}({', '.join(parts)})"


@st.composite
def near_valid(draw: Any) -> str:
    text = draw(st.one_of(scalars, lists, calls()))
    # whitespace between tokens
    if draw(st.booleans()):
        text = "".join(c + (" " if c in "[](),=" and draw(st.booleans()) else "") for c in text)
    # random corruption: delete, insert or duplicate characters
    for _ in range(draw(st.integers(0, 3))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        action = draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if action == "delete":
            text = text[:at] + text[at + 1 :]
        elif action == "insert":
            text = text[:at] + draw(st.sampled_from(list("[](),='\"\\ .-e0x"))) + text[at:]
        else:
            text = text[:at] + text[at] + text[at:]
    return text


@FAST
@given(st.text())
def test_any_text_parses_or_raises_grid_expression_error(text: str) -> None:
    check_parse(text)


@FAST
@given(near_valid())
def test_near_valid_text_parses_or_raises_grid_expression_error(text: str) -> None:
    check_parse(text)


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(st.sampled_from(sorted(distributions.DISTRIBUTIONS)), st.lists(arguments, max_size=4),
       st.one_of(st.none(), st.integers(-2, 5)))
def test_any_distribution_arguments_parse_or_raise(name: str, args: List[str], count: Any) -> None:
    parts = args + ([] if count is None else [f"size={count}"])
    check_parse(f"{name}({', '.join(parts)})")


big_ints = st.one_of(st.integers(-20, 20), st.integers(-(2**80), 2**80))


@FAST
@given(st.lists(big_ints, min_size=1, max_size=3))
def test_int_range_matches_python_for_any_magnitude(args: List[int]) -> None:
    text = f"range({', '.join(map(str, args))})"
    expected = range(*args) if args[-1] != 0 or len(args) < 3 else None
    if expected is None or not expected:  # step 0 or empty: an error, never a crash
        try:
            parse_expression(text)
        except GridExpressionError:
            return
        raise AssertionError(f"{text} should be rejected")
    expression = parse_expression(text)
    assert isinstance(expression, RangeValues)
    # Python's range answers these without len() (which overflows past sys.maxsize)
    size = expression.size
    assert size >= 1 and expected[size - 1] == expected[-1]
    assert expression[0] == expected[0] and expression[size - 1] == expected[-1]
    middle = size // 2
    assert expression[middle] == expected[middle]


# -- digits <-> index -------------------------------------------------------------------------------
def space_of(sizes: List[int]) -> SearchSpace:
    """Flags of the given sizes, of three kinds; value(k, d) is flag k's d-th value."""
    flags = []
    for k, size in enumerate(sizes):
        if k % 3 == 0:
            expression: Any = RangeValues(0, size)  # d
        elif k % 3 == 1:
            expression = RangeValues(2 * size, 0, -2)  # 2 * size - 2 * d
        else:
            expression = Choices(tuple(f"v{d}" for d in range(size))) if size <= 100 else RangeValues(0, size)
        flags.append(Flag(f"f{k}", expression))
    return SearchSpace(flags, seed=0)


def value(k: int, d: int, size: int) -> Any:
    if k % 3 == 1:
        return 2 * size - 2 * d
    if k % 3 == 2 and size <= 100:
        return f"v{d}"
    return d


@FAST
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_digits_index_bijection_on_small_spaces(sizes: List[int]) -> None:
    space = space_of(sizes)
    product = list(itertools.product(*(range(s) for s in sizes)))  # first flag slowest
    assert space.size == len(product)
    for i, digits in enumerate(product):
        assert space.digits(i) == list(digits)
        assert space.index(list(digits)) == i
        expected = [value(k, d, size) for k, (d, size) in enumerate(zip(digits, sizes))]
        assert [v for _, v in space.combination(i)] == expected


@FAST
@given(st.lists(st.integers(1, 10**12), min_size=1, max_size=8), st.data())
def test_digits_index_inverse_on_large_spaces(sizes: List[int], data: Any) -> None:
    space = space_of(sizes)
    assert space.size == _product(sizes)
    for _ in range(5):
        i = data.draw(st.integers(0, space.size - 1))
        digits = space.digits(i)
        assert all(0 <= d < s for d, s in zip(digits, sizes))
        assert space.index(digits) == i


def _product(sizes: List[int]) -> int:
    result = 1
    for s in sizes:
        result *= s
    return result


# -- random picks ---------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 2**200), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_distinct_indices_for_any_size(size: int, count: int, seed: int) -> None:
    count = min(count, size)
    rng = np.random.default_rng(seed)
    picks = distinct_indices(rng, size, count)
    assert len(picks) == count
    assert len(set(picks)) == count
    assert all(type(i) is int and 0 <= i < size for i in picks)
    assert distinct_indices(np.random.default_rng(seed), size, count) == picks  # reproducible


@FAST
@given(st.lists(st.one_of(st.integers(1, 10), st.integers(1, 2**70)), min_size=1, max_size=4),
       st.integers(1, 60), st.integers(0, 10**6))
def test_random_search_picks_distinct_in_range(sizes: List[int], k: int, seed: int) -> None:
    flags = [Flag(f"f{i}", RangeValues(0, s)) for i, s in enumerate(sizes)]
    space = SearchSpace(flags, seed)
    plan = random_search(space, k)
    assert plan.size == min(k, space.size)
    indices = [plan.combination_index(j) for j in range(plan.size)]
    assert len(set(indices)) == plan.size
    assert all(0 <= i < space.size for i in indices)
    jobs = [tuple(v for _, v in plan[j]) for j in range(plan.size)]
    assert len(set(jobs)) == plan.size
    assert all(0 <= v < s for job in jobs for v, s in zip(job, sizes))
    again = random_search(SearchSpace(flags, seed), k)
    assert [again.combination_index(j) for j in range(again.size)] == indices
