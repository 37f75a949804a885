"""Grid flag expressions (issue 2): scalars, lists, ranges, distributions, the count rule, errors.

Expected values are computed independently of the engine: Python's own `range`, numpy's Generator
called directly on the flag's stream, hand-written literals.
"""
from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, List, Tuple

import numpy as np
import pytest

from grid_sweeper import distributions, seeding
from grid_sweeper.dimensions import (
    Choices,
    Distribution,
    DrawnValues,
    Fixed,
    FreshSampler,
    RangeValues,
    bind,
)
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import KNOWN_FUNCTIONS, is_sweep, parse_expression, scalar

DOCS = Path(__file__).resolve().parent.parent / "docs" / "syntax.md"


def values_of(text: str, seed: int = 0, flag: str = "x") -> List[Any]:
    """All values a finite expression sweeps, in order."""
    bound = bind(parse_expression(text, flag), seed, flag)
    assert not isinstance(bound, FreshSampler), text
    return [bound[i] for i in range(bound.size)]


def is_plain(value: Any) -> bool:
    """A plain Python value (no numpy scalar or array anywhere inside)."""
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return type(value) in (int, float, bool, str, type(None))


# =================================================================================================
# Scalars
# =================================================================================================
@pytest.mark.parametrize(
    "text, expected, kind",
    [
        ("32", 32, int),
        ("-3", -3, int),
        ("+5", 5, int),
        ("0", 0, int),
        ("0.01", 0.01, float),
        ("1e-2", 0.01, float),
        ("-3.5E+4", -35000.0, float),
        (".5", 0.5, float),
        ("5.", 5.0, float),
        ("1e5", 100000.0, float),  # an exponent makes a float, as in Python
        ("True", True, bool),
        ("False", False, bool),
        ("true", True, bool),
        ("false", False, bool),
        ("bert", "bert", str),
        ("'bert'", "bert", str),
        ('"bert"', "bert", str),
        ("'32'", "32", str),  # quoted: stays a string
        ('"True"', "True", str),
        ("TRUE", "TRUE", str),  # only true/True/false/False are booleans
        ("resnet-18", "resnet-18", str),
        ("0x10", "0x10", str),
        ("  32  ", 32, int),
        ("\t'bert' ", "bert", str),
    ],
)
def test_scalar_values_and_types(text: str, expected: Any, kind: type) -> None:
    expression = parse_expression(text, "flag")
    assert isinstance(expression, Fixed)
    assert type(expression.value) is kind
    assert expression.value == expected
    assert not is_sweep(expression)
    assert values_of(text) == [expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'tab\there'", "tab\there"),
        (r"'line\nbreak'", "line\nbreak"),
        ("'a, b [c]'", "a, b [c]"),  # punctuation inside quotes is text
        ('"uniform(0, 1)"', "uniform(0, 1)"),  # a quoted call is just a string
        ("''", ""),
    ],
)
def test_quoted_strings_remove_quotes_and_honour_escapes(text: str, expected: str) -> None:
    expression = parse_expression(text)
    assert expression == Fixed(expected)


def test_scalar_function() -> None:
    assert scalar("32") == 32 and type(scalar("32")) is int
    assert scalar("1e-2") == 0.01 and type(scalar("1e-2")) is float
    assert scalar("null") is None and scalar("None") is None
    assert scalar("inf") == math.inf and scalar("-inf") == -math.inf
    assert math.isnan(scalar("nan"))
    assert scalar("bert") == "bert"
    # more digits than Python >= 3.11 converts to an int by default: no crash; the text is kept
    # where the conversion is refused (older Pythons convert it: 111...1 = (10**5000 - 1) / 9)
    assert scalar("1" * 5000) in ("1" * 5000, (10**5000 - 1) // 9)


# =================================================================================================
# Lists
# =================================================================================================
@pytest.mark.parametrize(
    "text, expected",
    [
        ("[32, 64, 128]", [32, 64, 128]),
        ("['resnet18', 'transformer', 'resnet50']", ["resnet18", "transformer", "resnet50"]),
        ("['resnet18' 'transformer', 'resnet50']", ["resnet18", "transformer", "resnet50"]),
        ("['resnet18' 'transformer' 'resnet50']", ["resnet18", "transformer", "resnet50"]),
        ("[resnet18, transformer]", ["resnet18", "transformer"]),
        ("[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
        ("[0.1, 1e-2, 32, True, bert, 'x y']", [0.1, 0.01, 32, True, "bert", "x y"]),
        ("[1 2 3]", [1, 2, 3]),  # numpy's print style without any comma
        ("[7]", [7]),
        ("[[]]", [[]]),  # one value: an empty list
        ("[1, 2,]", [1, 2]),  # a trailing comma, as in Python
    ],
)
def test_lists_sweep_their_elements(text: str, expected: List[Any]) -> None:
    expression = parse_expression(text, "flag")
    assert isinstance(expression, Choices)
    got = values_of(text)
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]  # 32 stays int, 0.1 float, ...
    assert is_sweep(expression)


def test_nested_list_sweeps_two_list_values() -> None:
    got = values_of("[[1, 2], [3, 4]]")
    assert len(got) == 2
    assert got[0] == [1, 2] and type(got[0]) is list
    assert got[1] == [3, 4] and type(got[1]) is list


# =================================================================================================
# range
# =================================================================================================
@pytest.mark.parametrize(
    "text, args",
    [
        ("range(5)", (5,)),
        ("range(2, 5)", (2, 5)),
        ("range(1, 10, 2)", (1, 10, 2)),
        ("range(10, 0, -3)", (10, 0, -3)),
        ("range(5, -5, -2)", (5, -5, -2)),
        ("range(-3, 3)", (-3, 3)),
        ("range(0, 1)", (0, 1)),
        ("range(100, 1000, 7)", (100, 1000, 7)),
    ],
)
def test_int_range_has_python_semantics(text: str, args: Tuple[int, ...]) -> None:
    got = values_of(text)
    assert got == list(range(*args))
    assert all(type(v) is int for v in got)


def test_range_examples_from_the_issue() -> None:
    assert values_of("range(1, 10, 2)") == [1, 3, 5, 7, 9]
    assert values_of("range(0, 1, 0.25)") == [0.0, 0.25, 0.5, 0.75]
    assert all(type(v) is float for v in values_of("range(0, 1, 0.25)"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("range(0, 1, 0.1)", [i / 10 for i in range(10)]),  # no accumulated 0.30000000000000004
        ("range(1, 0, -0.25)", [1.0, 0.75, 0.5, 0.25]),
        ("range(0.5, 3)", [0.5, 1.5, 2.5]),
        ("range(2.0)", [0.0, 1.0]),
        ("range(0.1, 0.7, 0.2)", [0.1, 0.3, 0.5]),  # 0.7 excluded (decimal arithmetic)
    ],
)
def test_float_range(text: str, expected: List[float]) -> None:
    got = values_of(text)
    assert got == expected
    assert all(type(v) is float for v in got)


def test_huge_range_is_lazy_and_exact() -> None:
    # len(range(10**30)) would raise OverflowError; the size must still be exact
    expression = parse_expression(f"range({10**30})")
    assert isinstance(expression, RangeValues)
    assert expression.size == 10**30
    assert expression[10**30 - 1] == 10**30 - 1
    stepped = parse_expression(f"range(7, {10**29 + 7}, 3)")
    assert stepped.size == (10**29 + 2) // 3  # ceil(10**29 / 3): 10**29 = 3 * 33..33 + 1
    assert stepped[stepped.size - 1] == 7 + 3 * (stepped.size - 1)


# =================================================================================================
# Whitespace
# =================================================================================================
@pytest.mark.parametrize(
    "text, expected",
    [
        ("  [ 32 ,64,  128 ]  ", [32, 64, 128]),
        ("[\t32,\n64 ]", [32, 64]),
        ("range ( 1 , 10 , 2 )", [1, 3, 5, 7, 9]),
        (" range(1,10,2) ", [1, 3, 5, 7, 9]),
        ("[ [ 1 , 2 ] , [ 3 , 4 ] ]", [[1, 2], [3, 4]]),
        ("[ 'resnet18'   'transformer' ,'resnet50' ]", ["resnet18", "transformer", "resnet50"]),
    ],
)
def test_whitespace_between_tokens(text: str, expected: List[Any]) -> None:
    assert values_of(text) == expected


@pytest.mark.parametrize(
    "text",
    ["uniform(0,1,3)", " uniform ( 0 , 1 , 3 ) ", "uniform(\t0,\n1, 3)",
     "uniform(low = 0, high=1 , size= 3)"],
)
def test_whitespace_in_calls(text: str) -> None:
    assert values_of(text, seed=5) == values_of("uniform(0, 1, 3)", seed=5)


# =================================================================================================
# Distributions: every name in the table, checked against numpy directly
# =================================================================================================
def _floats(low: float = -math.inf, high: float = math.inf, high_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return type(v) is float and low <= v and (v < high if high_open else v <= high)

    return check


def _ints(low: float = -math.inf, high: float = math.inf) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and low <= v <= high


def _float_vector(length: int, total: float = math.nan) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        ok = type(v) is list and len(v) == length and all(type(x) is float for x in v)
        return ok and (math.isnan(total) or math.isclose(sum(v), total))

    return check


def _int_vector(length: int, total: int, maxima: Tuple[int, ...] = ()) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        ok = type(v) is list and len(v) == length and all(type(x) is int and x >= 0 for x in v)
        return ok and sum(v) == total and all(x <= m for x, m in zip(v, maxima))

    return check


# name: (argument text, the same arguments as Python values, support check of one draw)
VALID = {
    "beta": ("2, 3", (2, 3), _floats(0, 1)),
    "binomial": ("10, 0.5", (10, 0.5), _ints(0, 10)),
    "chisquare": ("3", (3,), _floats(0)),
    "dirichlet": ("[1, 2]", ([1, 2],), _float_vector(2, total=1.0)),
    "exponential": ("2", (2,), _floats(0)),
    "f": ("3, 4", (3, 4), _floats(0)),
    "gamma": ("2, 1", (2, 1), _floats(0)),
    "geometric": ("0.5", (0.5,), _ints(1)),
    "gumbel": ("0, 1", (0, 1), _floats()),
    "hypergeometric": ("5, 5, 3", (5, 5, 3), _ints(0, 3)),
    "integers": ("0, 10", (0, 10), _ints(0, 9)),
    "laplace": ("0, 1", (0, 1), _floats()),
    "logistic": ("0, 1", (0, 1), _floats()),
    "lognormal": ("0, 1", (0, 1), _floats(0)),
    "logseries": ("0.9", (0.9,), _ints(1)),
    "multinomial": ("5, [0.5, 0.5]", (5, [0.5, 0.5]), _int_vector(2, 5)),
    "multivariate_hypergeometric": ("[2, 3], 2", ([2, 3], 2), _int_vector(2, 2, (2, 3))),
    "multivariate_normal": ("[0, 0], [[1, 0], [0, 1]]", ([0, 0], [[1, 0], [0, 1]]), _float_vector(2)),
    "negative_binomial": ("5, 0.5", (5, 0.5), _ints(0)),
    "noncentral_chisquare": ("3, 1", (3, 1), _floats(0)),
    "noncentral_f": ("3, 4, 1", (3, 4, 1), _floats(0)),
    "normal": ("0, 1", (0, 1), _floats()),
    "pareto": ("3", (3,), _floats(0)),
    "poisson": ("3", (3,), _ints(0)),
    "power": ("2", (2,), _floats(0, 1)),
    "random": ("", (), _floats(0, 1, high_open=True)),
    "rayleigh": ("1", (1,), _floats(0)),
    "standard_cauchy": ("", (), _floats()),
    "standard_exponential": ("", (), _floats(0)),
    "standard_gamma": ("2", (2,), _floats(0)),
    "standard_normal": ("", (), _floats()),
    "standard_t": ("3", (3,), _floats()),
    "triangular": ("0, 1, 2", (0, 1, 2), _floats(0, 2)),
    "uniform": ("2, 3", (2, 3), _floats(2, 3, high_open=True)),
    "vonmises": ("0, 1", (0, 1), _floats(-math.pi, math.pi)),
    "wald": ("1, 1", (1, 1), _floats(0)),
    "weibull": ("2", (2,), _floats(0)),
    "zipf": ("2", (2,), _ints(1)),
    "randint": ("0, 10", (0, 10), _ints(0, 9)),
    "loguniform": ("1e-5, 1e-1", (1e-5, 1e-1), _floats(1e-5, 1e-1)),
}
COUNT = 20


def numpy_draws(name: str, args: Tuple[Any, ...], count: int, seed: int, flag: str) -> List[Any]:
    """What numpy itself gives for `name(*args, size=count)` on the flag's stream."""
    rng = seeding.generator(seed, seeding.stream_key(flag))
    if name == "loguniform":
        low, high = args
        raw = np.exp(rng.uniform(np.log(low), np.log(high), size=count))
    else:
        raw = getattr(rng, "integers" if name == "randint" else name)(*args, size=count)
    return raw.tolist()


def call_text(name: str, count: Any = None) -> str:
    args = VALID[name][0]
    if count is None:
        return f"{name}({args})"
    return f"{name}({args}, {count})" if args else f"{name}({count})"


def test_every_generator_distribution_is_in_the_table() -> None:
    not_distributions = {"bit_generator", "bytes", "choice", "permutation", "permuted", "shuffle", "spawn"}
    numpy_names = {m for m in dir(np.random.Generator) if not m.startswith("_")} - not_distributions
    assert numpy_names  # numpy offers sampling methods at all
    assert set(distributions.DISTRIBUTIONS) == numpy_names | {"randint", "loguniform"}
    assert set(VALID) == set(distributions.DISTRIBUTIONS)  # every name has a test case below
    assert set(KNOWN_FUNCTIONS) == {"range"} | set(distributions.DISTRIBUTIONS)


@pytest.mark.parametrize("name", sorted(VALID))
def test_distribution_draws(name: str) -> None:
    _, args, in_support = VALID[name]
    text = call_text(name, COUNT)
    expression = parse_expression(text, "lr")
    assert isinstance(expression, Distribution) and expression.count == COUNT
    assert is_sweep(expression)

    got = values_of(text, seed=7, flag="lr")
    assert len(got) == COUNT
    assert all(is_plain(v) for v in got), [type(v) for v in got]
    bad = [v for v in got if not in_support(v)]
    assert not bad, f"{name}: values outside the support or of the wrong type: {bad}"
    # exactly numpy's distribution NAME with those parameters, on the flag's stream
    assert got == numpy_draws(name, args, COUNT, seed=7, flag="lr")
    # the same seed gives the same values; another seed (or another flag) other values
    assert values_of(text, seed=7, flag="lr") == got
    assert values_of(text, seed=8, flag="lr") != got
    assert values_of(text, seed=7, flag="wd") != got


@pytest.mark.parametrize("name", sorted(VALID))
def test_distribution_without_count_draws_fresh(name: str) -> None:
    _, args, in_support = VALID[name]
    expression = parse_expression(call_text(name), "lr")
    assert isinstance(expression, Distribution) and expression.is_fresh and expression.count is None
    sampler = bind(expression, 7, "lr")
    assert isinstance(sampler, FreshSampler)
    draws = [sampler.sample(trial) for trial in range(COUNT)]
    assert all(is_plain(v) and in_support(v) for v in draws), draws
    assert [sampler.sample(trial) for trial in range(COUNT)] == draws  # reproducible per trial
    assert [bind(expression, 8, "lr").sample(trial) for trial in range(COUNT)] != draws
    if name not in ("hypergeometric", "multivariate_hypergeometric", "multinomial", "binomial",
                    "geometric", "logseries", "zipf", "poisson", "negative_binomial", "integers",
                    "randint"):
        assert len({repr(v) for v in draws}) == COUNT  # a continuous draw differs per trial


def test_loguniform_is_uniform_in_log_space() -> None:
    got = values_of("loguniform(1e-5, 1e-1, 400)", seed=3)
    assert all(1e-5 <= v <= 1e-1 for v in got)
    below_median = sum(v < 1e-3 for v in got)  # 1e-3 is the log-space midpoint
    assert 150 < below_median < 250
    in_lowest_decade = sum(v < 1e-4 for v in got)  # a quarter in log space (not 0.1% as uniform)
    assert 60 < in_lowest_decade < 140


def test_randint_is_integers_with_exclusive_high() -> None:
    got = values_of("randint(0, 3, 300)", seed=1)
    assert set(got) == {0, 1, 2}
    assert got == values_of("integers(0, 3, 300)", seed=1)
    with_endpoint = values_of("integers(0, 3, endpoint=True, size=300)", seed=1)
    assert set(with_endpoint) == {0, 1, 2, 3}


# =================================================================================================
# The count rule
# =================================================================================================
@pytest.mark.parametrize(
    "text, count, args, kwargs",
    [
        ("uniform(0, 1, 3)", 3, (0, 1), {}),
        ("uniform(0, 1)", None, (0, 1), {}),
        ("uniform(1e-5, 1e-1)", None, (1e-5, 1e-1), {}),
        ("standard_normal(4)", 4, (), {}),
        ("standard_normal()", None, (), {}),
        ("normal(loc=0, scale=1, size=5)", 5, (), {"loc": 0, "scale": 1}),
        ("normal(0, 1, 5)", 5, (0, 1), {}),
        ("normal(0, 1, size=5)", 5, (0, 1), {}),
        ("normal(0, scale=2)", None, (0,), {"scale": 2}),
        # fewer positional arguments than parameters: no count, numpy's defaults for the rest
        ("normal(3)", None, (3,), {}),
        ("exponential(2)", None, (2,), {}),
        ("exponential(2, 5)", 5, (2,), {}),
        ("poisson(3, 4)", 4, (3,), {}),
        ("gamma(2, 5)", None, (2, 5), {}),  # shape=2, scale=5: two parameters, no count
        ("hypergeometric(5, 5, 3, 4)", 4, (5, 5, 3), {}),
        ("random(3)", 3, (), {}),
    ],
)
def test_count_rule(text: str, count: Any, args: Tuple[Any, ...], kwargs: dict) -> None:
    expression = parse_expression(text)
    assert isinstance(expression, Distribution)
    assert expression.count == count
    assert expression.args == args and expression.kwargs == kwargs
    assert expression.is_fresh == (count is None)
    bound = bind(expression, 0, "x")
    if count is None:
        assert isinstance(bound, FreshSampler)
    else:
        assert isinstance(bound, DrawnValues) and bound.size == count and len(list(bound)) == count


def test_keyword_arguments_match_positional_ones() -> None:
    keyword = values_of("normal(loc=0, scale=1, size=5)", seed=11)
    assert len(keyword) == 5 and all(type(v) is float for v in keyword)
    assert keyword == values_of("normal(0, 1, 5)", seed=11)
    rng = seeding.generator(11, seeding.stream_key("x"))
    assert keyword == rng.normal(loc=0, scale=1, size=5).tolist()
    assert values_of("uniform(low=2, high=3, size=4)", seed=2) == values_of("uniform(2, 3, 4)", seed=2)
    assert values_of("normal(5, 2, 3)", seed=4) == values_of("normal(5, scale=2, size=3)", seed=4)


def test_distribution_defaults_are_numpys() -> None:
    # normal() with no parameters is N(0, 1), exactly as numpy's default
    rng = seeding.generator(9, seeding.stream_key("x"))
    assert values_of("normal(size=6)", seed=9) == rng.normal(size=6).tolist()


# =================================================================================================
# Errors: one GridExpressionError naming the flag, a caret under the fault, what is accepted
# =================================================================================================
def caret_of(error: GridExpressionError, text: str) -> Tuple[int, str]:
    """(position, text under the carets) as the rendered message shows them."""
    lines = str(error).splitlines()
    assert lines[1] == "    " + text, str(error)
    marks = lines[2][4:]
    start = len(marks) - len(marks.lstrip(" "))
    assert set(marks.strip()) == {"^"}, str(error)
    length = len(marks.strip())
    assert (error.position, error.length) == (start, length)
    return start, text[start : start + length]


def parse_error(text: str, flag: str = "model.lr") -> GridExpressionError:
    with pytest.raises(GridExpressionError) as info:
        parse_expression(text, flag)
    error = info.value
    message = str(error)
    assert message.startswith(f"flag '{flag}': "), message
    assert error.flag == flag
    assert message.splitlines()[-1].startswith("  ") and error.hint in message  # says what is accepted
    return error


@pytest.mark.parametrize(
    "text, problem, caret",
    [
        # unknown function
        ("unifrom(1e-5, 1e-1, 3)", "unknown function 'unifrom'", (0, "unifrom")),
        ("  nromal(0, 1, 3)", "unknown function 'nromal'", (2, "nromal")),
        ("foo(1)", "unknown function 'foo'", (0, "foo")),
        # wrong arity
        ("uniform(0, 1, 2, 3)", "too many arguments: uniform takes 2 parameter(s)", (17, "3")),
        ("uniform(0, 1, 2, size=3)", "too many arguments", (14, "2")),
        ("standard_normal(1, 2)", "too many arguments: standard_normal takes 0", (19, "2")),
        ("beta(1)", "beta needs parameter(s) b", (0, "beta(1)")),
        ("hypergeometric(5, 5)", "needs parameter(s) nsample", (0, "hypergeometric(5, 5)")),
        ("range(1, 2, 3, 4)", "range takes 1 to 3 arguments, got 4", (0, "range(1, 2, 3, 4)")),
        ("range()", "range takes 1 to 3 arguments, got 0", (0, "range()")),
        ("normal(foo=1)", "normal has no argument 'foo'", (7, "foo")),
        ("normal(loc=0, 1)", "positional argument after a keyword argument", (14, "1")),
        ("normal(0, loc=1)", "parameter 'loc' given twice", (10, "loc")),
        ("range(1, step=2)", "range takes no keyword arguments", (9, "step")),
        # count not a positive int
        ("uniform(0, 1, 0)", "the count must be a positive int, got 0", (14, "0")),
        ("uniform(0, 1, -2)", "the count must be a positive int, got -2", (14, "-2")),
        ("uniform(0, 1, 2.5)", "the count must be a positive int, got 2.5", (14, "2.5")),
        ("uniform(0, 1, True)", "the count must be a positive int, got True", (14, "True")),
        ("uniform(0, 1, 'three')", "the count must be a positive int, got 'three'", (14, "'three'")),
        ("standard_normal(0)", "the count must be a positive int, got 0", (16, "0")),
        ("normal(loc=0, scale=1, size=0)", "the count must be a positive int", (23, "size")),
        # unbalanced brackets and other syntax
        ("[1, 2", "unbalanced '[': missing ']'", (0, "[")),
        ("[[1, 2], [3, 4]", "unbalanced '[': missing ']'", (0, "[")),
        ("range(1, 10", "unbalanced '(': missing ')'", (5, "(")),
        ("uniform(0, 1, 3", "unbalanced '(': missing ')'", (7, "(")),
        ("1, 2]", "unbalanced ']'", (4, "]")),
        ("(1", "unbalanced '('", (0, "(")),
        ("[1, 2]]", "unexpected ']' after the list", (6, "]")),
        ("uniform(0, 1, 3))", "unexpected ')' after the closing ')'", (16, ")")),
        ("'bert", "unterminated string", (0, "'bert")),
        ("[1,,2]", "missing value before ','", (3, ",")),
        ("[1, uniform(0, 1, 3)]", "a function call cannot be a list element", (4, "uniform")),
        ("uniform(0, normal(0, 1), 3)", "nested function calls are not supported", (11, "normal")),
        # empty list
        ("[]", "empty list: nothing to sweep", (0, "[]")),
        ("[  ]", "empty list: nothing to sweep", (0, "[  ]")),
        # range
        ("range(0, 10, 0)", "range step must not be zero", (13, "0")),
        ("range(0, 1, 0.0)", "range step must not be zero", (12, "0.0")),
        ("range(5, 1)", "empty range: nothing to sweep", (0, "range(5, 1)")),
        ("range(0, inf)", "range arguments must be finite", (9, "inf")),
        ("range('a')", "range arguments must be numbers, got 'a'", (6, "'a'")),
    ],
)
def test_error_kinds_and_caret(text: str, problem: str, caret: Tuple[int, str]) -> None:
    error = parse_error(text)
    assert problem in error.problem
    assert caret_of(error, text) == caret


def test_unknown_function_suggests_a_close_match() -> None:
    error = parse_error("unifrom(1e-5, 1e-1, 3)", flag="lr")
    assert "did you mean 'uniform'?" in str(error)
    assert "range" in error.hint and "loguniform" in error.hint  # lists what is accepted
    assert "did you mean 'normal'?" in str(parse_error("nromal(0, 1, 3)"))
    assert "did you mean 'range'?" in str(parse_error("rnage(3)"))
    assert "did you mean" not in str(parse_error("qqqqqq(3)"))


@pytest.mark.parametrize(
    "text, numpy_call",
    [
        ("normal(0, -1, 3)", lambda rng: rng.normal(0, -1, 1)),
        ("poisson(-1, 3)", lambda rng: rng.poisson(-1, 1)),
        ("integers(5, 3, 2)", lambda rng: rng.integers(5, 3, 1)),
        ("beta(0, 1, 2)", lambda rng: rng.beta(0, 1, 1)),
        ("hypergeometric(5, 5, 20, 3)", lambda rng: rng.hypergeometric(5, 5, 20, 1)),
        ("dirichlet([1, -2], 3)", lambda rng: rng.dirichlet([1, -2], 1)),
        ("binomial(10, 1.5)", lambda rng: rng.binomial(10, 1.5, 1)),
    ],
)
def test_invalid_parameters_give_numpys_complaint(text: str, numpy_call: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError) as numpy_error:
        numpy_call(np.random.default_rng(0))
    error = parse_error(text)
    assert error.problem.startswith("invalid parameters for ")
    assert f"numpy says {str(numpy_error.value).strip()}" in error.problem
    assert caret_of(error, text) == (0, text)  # the whole call
    assert "parameters" in error.hint  # what the distribution accepts


def test_loguniform_bounds_error() -> None:
    error = parse_error("loguniform(0, 1, 3)")
    assert "0 < low < high" in error.problem
    assert "0 < low < high" in parse_error("loguniform(1, 0.5, 3)").problem


def test_error_format_example() -> None:
    error = parse_error("normal(0, 1, -3)", flag="optimizer.lr")
    assert str(error).splitlines() == [
        "flag 'optimizer.lr': the count must be a positive int, got -3",
        "    normal(0, 1, -3)",
        "                 ^^",
        "  normal(loc, scale, n): parameters loc, scale, then the number of values n (or size=n); "
        "without n, random_search draws a fresh value per trial",
    ]


def test_error_without_flag_says_expression() -> None:
    with pytest.raises(GridExpressionError) as info:
        parse_expression("[1, 2")
    assert str(info.value).startswith("expression: unbalanced '['")
    assert info.value.flag is None
    assert isinstance(info.value, ValueError)


# =================================================================================================
# Parsing never evaluates user text
# =================================================================================================
@pytest.mark.parametrize(
    "template, name",
    [
        ("__import__('os').system('touch {path}')", "__import__"),
        ("__import__('pathlib').Path('{path}').touch()", "__import__"),
        ("os.system('touch {path}')", "os.system"),
        ("eval(\"open('{path}', 'w')\")", "eval"),
        ("exec(\"open('{path}', 'w')\")", "exec"),
        ("open('{path}', 'w')", "open"),
        ("getattr(1, 2)", "getattr"),
        ("eval(1)", "eval"),
        ("os.system(1)", "os.system"),
        ("np.random.uniform(0, 1, 3)", "np.random.uniform"),
        ("__class__(1)", "__class__"),
    ],
)
def test_no_evaluation(template: str, name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    text = template.format(path=sentinel)
    error = parse_error(text)
    assert error.problem == f"unknown function '{name}'"
    assert caret_of(error, text) == (0, name)
    assert not sentinel.exists()


def test_attribute_names_are_not_looked_up_on_numpy() -> None:
    # names outside the allowlist are unknown even if numpy's Generator has them
    for name in ("choice", "shuffle", "permutation", "bytes", "spawn", "__init__", "bit_generator"):
        assert parse_error(f"{name}(3)").problem == f"unknown function '{name}'"


# =================================================================================================
# docs/syntax.md carries the distributions table generated from DISTRIBUTIONS
# =================================================================================================
TABLE_START = "<!-- distributions table: generated by `python tests/test_expressions.py` -->"
TABLE_END = "<!-- end of distributions table -->"


def value_kind(name: str) -> str:
    """The Python type of one draw (from a real draw with the test's valid parameters)."""
    value = values_of(call_text(name, 1))[0]
    if isinstance(value, list):
        return f"list of {type(value[0]).__name__}"
    return type(value).__name__


def distribution_table() -> str:
    rows = [
        "| name | with a count | parameters (optional ones in brackets) | keyword-only | each value |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(distributions.DISTRIBUTIONS):
        info = distributions.DISTRIBUTIONS[name]
        params = [p if i < info.required else f"[{p}]" for i, p in enumerate(info.params)]
        rows.append(
            f"| `{name}` | `{info.signature}` | {', '.join(params) or '—'} | "
            f"{', '.join(info.keyword_only) or '—'} | {value_kind(name)} |"
        )
    return "\n".join(rows)


def test_docs_distribution_table_is_current() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text
    block = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert block == distribution_table(), "regenerate it: python tests/test_expressions.py"


def test_docs_examples_are_right() -> None:
    """The docs' example rows `| `EXPR` | `[values]` |` give exactly those values (types too);
    rows whose second column starts with "error" fail; other rows parse."""
    text = DOCS.read_text(encoding="utf-8")
    examples = re.findall(r"^\| `([^`|]+)` \| ([^|]+?) \|$", text, flags=re.MULTILINE)
    checked = 0
    for expression, produces in examples:
        literal = re.fullmatch(r"`(\[.*\])`", produces)
        if produces.startswith("error"):
            with pytest.raises(GridExpressionError):
                parse_expression(expression)
        elif literal:
            expected = ast.literal_eval(literal.group(1))
            got = values_of(expression)
            assert got == expected, expression
            assert [type(v) for v in got] == [type(v) for v in expected], expression
            checked += 1
        else:
            parse_expression(expression)
    assert checked >= 15


if __name__ == "__main__":  # print the table for docs/syntax.md
    print(TABLE_START)
    print(distribution_table())
    print(TABLE_END)


@pytest.mark.parametrize("text", ["zipf(474577, 3)", "zipf(1e300, 3)", "zipf(a=2000, size=3)"])
def test_zipf_with_a_huge_exponent_draws_ones_and_never_hangs(text: str) -> None:
    """numpy 2.0 (the last for Python 3.9) loops forever on zipf for a > 1024; the expression is
    checked and drawn in a child process, so that a hang fails the test instead of the suite."""
    code = ("from grid_sweeper.expressions import parse_expression; "
            "from grid_sweeper.dimensions import bind; "
            f"b = bind(parse_expression({text!r}, 'k'), 1, 'k'); "
            "print([b[i] for i in range(b.size)])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[1, 1, 1]"


def test_zipf_below_the_huge_exponent_still_draws_from_numpy() -> None:
    assert values_of("zipf(1.5, 200)", seed=3) != [1] * 200
