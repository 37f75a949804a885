"""Teach Hydra's override parser the Grid expressions, idempotently, at plugin import.

- every distribution name becomes a grammar function returning a `GridSweep` (a ChoiceSweep), so
  `alpha=uniform(1e-5,1e-1,3)` parses instead of failing with "Unknown function";
- an override Hydra cannot parse but the Grid engine can (a numpy print-style list) becomes a
  `GridSweep` too; one the engine rejects fails with the engine's error (flag, caret, hint);
- with `hydra/sweeper=grid` in a multirun, list values (`beta=[1,2]`) are not applied to the main
  config (they are sweeps, applied per job), so a typed field or a new key does not fail there.

Nothing heavy is imported here: numpy loads only when a distribution is evaluated.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from hydra.core.override_parser.types import ChoiceSweep

SWEEPER_TARGET = "hydra_plugins.hydra_grid_sweeper.grid_sweeper.GridSweeper"
_MARK = "_hydra_grid_sweeper_hook"
_compose_state = threading.local()


@dataclass
class GridSweep(ChoiceSweep):
    """A Grid expression in Hydra's parse tree; `.list` holds example draws (seed 0)."""

    expression: Any = None


def _grid_function(name: str) -> Callable[..., GridSweep]:
    def grid_function(*args: Any, **kwargs: Any) -> GridSweep:
        from grid_sweeper.expressions import build_call

        expression = build_call(
            name,
            [(value, None) for value in args],
            {key: (value, None) for key, value in kwargs.items()},
            text="",
            span=(0, 0),
        )
        return GridSweep(list=_example_values(expression), expression=expression)

    grid_function.__name__ = name
    return grid_function


def _example_values(expression: Any) -> List[Any]:
    from grid_sweeper.dimensions import Choices, bind

    if isinstance(expression, Choices):
        return list(expression.values)
    values = bind(expression, seed=0, flag="")
    if hasattr(values, "sample"):
        return [values.sample(0)]
    return list(values)


def split_override(line: str) -> tuple:
    """(key part, value text) of an override line; value None for `~key`."""
    key, sep, value = line.partition("=")
    return key, (value if sep else None)


def _is_wrapped(func: Any) -> bool:
    return bool(getattr(func, _MARK, False))


def _mark(func: Any) -> Any:
    setattr(func, _MARK, True)
    return func


def _install_functions() -> None:
    from hydra.core.override_parser import overrides_parser

    from grid_sweeper.distributions import DISTRIBUTIONS

    original = overrides_parser.create_functions
    if _is_wrapped(original):
        return

    def create_functions() -> Any:
        functions = original()
        for name in DISTRIBUTIONS:
            if name not in functions.definitions:
                functions.register(name=name, func=_grid_function(name))
        return functions

    overrides_parser.create_functions = _mark(create_functions)


def _install_parse_fallback() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    original = OverridesParser.parse_overrides
    if _is_wrapped(original):
        return

    def parse_overrides(self: Any, overrides: List[str]) -> Any:
        parsed = []
        for line in overrides:
            try:
                parsed.extend(original(self, [line]))
            except Exception as hydra_error:
                parsed.append(_grid_fallback(self, original, line, hydra_error))
            grid_lines = getattr(_compose_state, "grid_lines", None)  # set while composing
            if grid_lines is not None and isinstance(parsed[-1]._value, GridSweep):
                grid_lines.append(line)
        return parsed

    OverridesParser.parse_overrides = _mark(parse_overrides)


def _grid_fallback(parser: Any, original: Any, line: str, hydra_error: Exception) -> Any:
    """Parse `line` with the Grid engine after Hydra failed on it; raise its clearer error."""
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    from grid_sweeper.errors import GridExpressionError
    from grid_sweeper.expressions import is_sweep, parse_expression

    key, value = split_override(line)
    if value is None or _hydra_owns(value):
        raise hydra_error
    try:
        stub = original(parser, [f"{key}=0"])[0]
    except Exception:
        raise hydra_error from None
    try:
        expression = parse_expression(value, flag=key.lstrip("+~"))
    except GridExpressionError as error:
        raise OverrideParseException(override=line, message=str(error)) from None
    if not is_sweep(expression):
        raise hydra_error
    stub.value_type = ValueType.CHOICE_SWEEP
    stub._value = GridSweep(list=_example_values(expression), expression=expression)
    stub.input_line = line
    return stub


_HYDRA_FUNCTIONS = {"int", "str", "bool", "float", "choice", "interval", "tag", "sort", "shuffle",
                    "glob"}


def _hydra_owns(value: str) -> bool:
    """Whether `value` calls one of Hydra's own grammar functions (Hydra's error is the right one)."""
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(", value)
    return bool(match) and match.group(1) in _HYDRA_FUNCTIONS


def _install_list_sweeps() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.types import RunMode

    original_load = ConfigLoaderImpl.load_configuration
    if _is_wrapped(original_load):
        return
    original_apply = ConfigLoaderImpl._apply_overrides_to_config

    def load_configuration(self: Any, *args: Any, **kwargs: Any) -> Any:
        run_mode = kwargs.get("run_mode", args[2] if len(args) > 2 else None)
        previous = getattr(_compose_state, "multirun", False), getattr(_compose_state, "grid_lines", None)
        _compose_state.multirun, _compose_state.grid_lines = run_mode == RunMode.MULTIRUN, []
        try:
            cfg = original_load(self, *args, **kwargs)
            if _compose_state.multirun and _compose_state.grid_lines and not uses_grid_sweeper(cfg):
                _refuse_without_grid_sweeper(_compose_state.grid_lines[0])
            return cfg
        finally:
            _compose_state.multirun, _compose_state.grid_lines = previous

    def apply_overrides_to_config(overrides: List[Any], cfg: Any) -> None:
        if getattr(_compose_state, "multirun", False) and uses_grid_sweeper(cfg):
            overrides = [o for o in overrides if not is_list_sweep(o)]
        original_apply(overrides, cfg)

    ConfigLoaderImpl.load_configuration = _mark(load_configuration)
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_overrides_to_config)


def _refuse_without_grid_sweeper(line: str) -> None:
    """Another sweeper is selected: a Grid expression stays an error, as without the plugin."""
    from hydra.errors import ConfigCompositionException

    raise ConfigCompositionException(
        f"'{line}' is a Grid expression, which only hydra/sweeper=grid understands: "
        "add hydra/sweeper=grid to the command line (or `override hydra/sweeper: grid` to the "
        "defaults list)"
    )


def uses_grid_sweeper(cfg: Any) -> bool:
    from omegaconf import OmegaConf

    target: Optional[str] = OmegaConf.select(cfg, "hydra.sweeper._target_", default=None)
    return target == SWEEPER_TARGET


def is_list_sweep(override: Any) -> bool:
    """A `key=[...]` override of the app's config: the grid sweeper sweeps its elements."""
    return (
        not override.is_hydra_override()
        and not override.is_delete()
        and not override.is_sweep_override()
        and isinstance(override.value(), list)
    )


def install() -> None:
    """Install every hook once, however often this module is executed."""
    _install_functions()
    _install_parse_fallback()
    _install_list_sweeps()
