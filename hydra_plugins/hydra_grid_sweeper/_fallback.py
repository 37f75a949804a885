"""Settle an override Hydra's parser rejected: a Grid sweep, the engine's error, or Hydra's own.

Imported by the parse hook (`_grammar`) only when an override fails Hydra's parse while it
matters to the grid sweeper, so the engine stays out of every other Hydra run.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from hydra.core.override_parser.types import ChoiceSweep, Override, ValueType
from hydra.errors import ConfigCompositionException, OverrideParseException

from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import is_sweep, parse_expression
from grid_sweeper.flag_text import split_override
from hydra_plugins.hydra_grid_sweeper._grammar import PARAMS_PREFIX


@dataclass
class GridSweep(ChoiceSweep):
    """A Grid expression in Hydra's parse tree: the engine's expression, nothing drawn yet."""

    expression: Any = None


# Hydra's own grammar functions, whose errors stand. `range` is not among them: one Hydra rejects
# (`range(0, 10**30)`) is the engine's to parse.
_HYDRA_FUNCTIONS = {"int", "str", "bool", "float", "choice", "interval", "tag", "sort", "shuffle",
                    "glob"}


def _hydra_owns(value: str) -> bool:
    """Whether `value` calls one of Hydra's own grammar functions (Hydra's error is the right one)."""
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(", value)
    return bool(match) and match.group(1) in _HYDRA_FUNCTIONS


def settle(
    parser: Any,
    hydra_parse: Callable[[Any, List[str]], List[Override]],
    line: str,
    hydra_error: OverrideParseException,
    grid_chosen: Optional[bool],
    multirun: bool,
) -> Override:
    """The override for `line`, which Hydra failed to parse with `hydra_error`, or the error to show.

    `grid_chosen` None: the sweeper could not be told (the defaults list itself fails), so Hydra's
    own error stands. The engine's error ends a multirun with exit code 2 and no Hydra hint (an
    expected outcome of a sweep); in a run without `-m` (or Hydra's compose API) it is raised."""
    key, value = split_override(line)
    name = key.lstrip("+~")
    if grid_chosen and value is not None and name.startswith(PARAMS_PREFIX):
        return _text_value(parser, hydra_parse, key, value, line, hydra_error)
    if value is None or name.startswith(("hydra.", "hydra/")) or _hydra_owns(value):
        raise hydra_error
    if not grid_chosen:
        if grid_chosen is False and multirun and _is_grid_sweep(value, name):
            refuse_without_grid_sweeper(line)
        raise hydra_error
    try:
        expression = parse_expression(value, flag=name)
    except GridExpressionError as error:
        if not multirun:
            raise OverrideParseException(override=line, message=str(error)) from None
        # an expected outcome of a grid sweep: the engine's error and exit code 2, as the sweeper's
        # own errors, without Hydra's HYDRA_FULL_ERROR hint
        sys.stderr.write(f"{error}\n")
        sys.stderr.flush()
        sys.exit(2)
    if not is_sweep(expression):
        raise hydra_error
    try:
        stub = hydra_parse(parser, [f"{key}=0"])[0]
    except OverrideParseException:
        raise hydra_error from None
    stub.value_type = ValueType.CHOICE_SWEEP
    stub._value = GridSweep(list=[], expression=expression)
    stub.input_line = line
    return stub


def _text_value(parser: Any, hydra_parse: Callable[[Any, List[str]], List[Override]], key: str,
                value: str, line: str, hydra_error: Exception) -> Override:
    """`hydra.sweeper.params.alpha=uniform(0,1,3)`: the text, kept as a string for the sweeper."""
    try:
        stub = hydra_parse(parser, [f"{key}=''"])[0]
    except OverrideParseException:
        raise hydra_error from None
    stub._value = value
    stub.input_line = line
    return stub


def _is_grid_sweep(value: str, name: str) -> bool:
    try:
        return is_sweep(parse_expression(value, flag=name))
    except GridExpressionError:
        return False


def refuse_without_grid_sweeper(line: str) -> None:
    """Another sweeper is chosen: a Grid expression is an error that names the grid sweeper."""
    raise ConfigCompositionException(
        f"'{line}' is a Grid expression, which only hydra/sweeper=grid understands: "
        "add hydra/sweeper=grid to the command line (or `override hydra/sweeper: grid` to the "
        "defaults list)"
    )
