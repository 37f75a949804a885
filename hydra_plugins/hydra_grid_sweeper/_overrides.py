"""Translate parsed Hydra overrides into the engine's flags, and job values back into overrides."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.override_parser.types import (
    IntervalSweep,
    Override,
    Quote,
    QuotedString,
    RangeSweep,
)

from grid_sweeper.dimensions import Choices, Distribution, Expression, Fixed
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import build_call, parse_expression
from grid_sweeper.flag_text import name_and_value, split_override
from grid_sweeper.space import Flag
from hydra_plugins.hydra_grid_sweeper._fallback import GridSweep
from hydra_plugins.hydra_grid_sweeper._grammar import is_list_sweep


@dataclass(frozen=True)
class OverrideText:
    """A value already in override syntax (from Hydra's own sweeps and plain overrides)."""

    text: str


@dataclass
class SweepFlag:
    """One command-line override as the sweeper sees it."""

    key: str  # the key element: `+beta`, `db`, `model@pkg`
    line: str  # the override as typed
    expression: Expression

    @property
    def is_sweep(self) -> bool:
        return not isinstance(self.expression, Fixed)


def merge_params(params: Optional[Dict[str, Any]], arguments: Sequence[str]) -> List[str]:
    """`params` (flag -> text) under the command line: a command-line flag replaces a param.

    A flag given twice on the command line stays twice, for the search space to refuse.
    """
    given = {name_and_value(line)[0] for line in arguments}
    merged = [f"{key}={value if isinstance(value, str) else format_value(value)}"
              for key, value in (params or {}).items() if key not in given]
    return merged + list(arguments)


def to_flags(overrides: Sequence[Override], group_exists: Any, config: Any) -> List[SweepFlag]:
    """One SweepFlag per override, its expression in the engine's terms (`config`: the composed
    config, which tells whether a key holds a list)."""
    flags = []
    for override in overrides:
        key = override.get_key_element()
        line = override.input_line or f"{key}={override.get_value_element_as_str()}"
        flags.append(SweepFlag(key, line, _expression(override, line, group_exists, config)))
    return flags


def _expression(override: Override, line: str, group_exists: Any, config: Any) -> Expression:
    value = override.value()
    if isinstance(value, GridSweep):
        _, text = split_override(line)
        return parse_expression(text or "", flag=override.get_key_element().lstrip("+~"))
    if isinstance(value, IntervalSweep):
        return Distribution("uniform", (float(value.start), float(value.end)))
    if isinstance(value, RangeSweep) and not value.shuffle:
        return _engine_range(value, override.get_key_element().lstrip("+~"), line)
    if override.is_sweep_override():
        return Choices(tuple(OverrideText(s) for s in override.sweep_string_iterator()))
    if is_list_sweep(override, config) and not group_exists(override.key_or_group):
        return _list_sweep(value, override.key_or_group, line)
    return Fixed(OverrideText(override.get_value_element_as_str()))


def _list_sweep(hydra_value: List[Any], name: str, line: str) -> Expression:
    """A sweeping list read by the engine, as `gridsweep` reads it, so that both front ends give
    the same values: numpy print style (`[1 2 3]`), `\\n` escapes with or without commas, Grid's
    scalars. A list only Hydra reads (`[int(1), 2]`) keeps Hydra's elements."""
    _, text = split_override(line)
    try:
        expression = parse_expression(text or "", flag=name)
    except GridExpressionError:
        if not hydra_value:
            raise
        return Choices(tuple(hydra_value))
    return expression if isinstance(expression, Choices) else Choices(tuple(hydra_value))


def _engine_range(value: RangeSweep, name: str, line: str) -> Expression:
    """Hydra's `range(...)` as the engine's range: lazy at any size, exact float steps, its checks."""
    _, text = split_override(line)
    text = text or ""
    arguments = [(value.start, None), (value.stop, None), (value.step, None)]
    try:
        return build_call("range", arguments, {}, text, (0, len(text)))
    except GridExpressionError as error:
        raise error.with_flag(name) from None


# A string Hydra reads back unquoted as the same string: an ASCII identifier that is no keyword.
# Anything else (unicode, punctuation, `1_000`, `tRuE`, spaces) is quoted, or Hydra's lexer
# rejects it or reads another value.
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}


def format_value(value: Any) -> str:
    """A job's value in override syntax that Hydra parses back to the same value."""
    if isinstance(value, OverrideText):
        return value.text
    if isinstance(value, str):
        if _BARE_WORD.match(value) and value.lower() not in _HYDRA_WORDS:
            return value  # `resnet18`, `adam_w`: readable in override_dirname and logs
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{format_value(k)}:{format_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    return str(value)


def job_overrides(keys: Sequence[str], combination: Sequence[Tuple[str, Any]]) -> List[str]:
    """The override lines of one job."""
    return [f"{key}={format_value(value)}" for key, (_, value) in zip(keys, combination)]


def literal_overrides(flags: Sequence[SweepFlag]) -> List[str]:
    """strategy none: plain overrides as typed; every sweep expression as its literal text."""
    lines = []
    for flag in flags:
        if flag.is_sweep:
            _, text = split_override(flag.line)
            lines.append(f"{flag.key}={format_value(text or '')}")
        else:
            lines.append(flag.line)
    return lines


def engine_flags(flags: Sequence[SweepFlag]) -> List[Flag]:
    return [Flag(f.key.lstrip("+~"), f.expression) for f in flags]
