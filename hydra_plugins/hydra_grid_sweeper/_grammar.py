"""Grid expressions in Hydra's override parser, only for a command that chose the grid sweeper.

Hydra parses every override before any sweeper runs, so the grid sweeper needs three hooks,
installed once at plugin import. They are cheap: nothing of the engine loads until an override
fails Hydra's own parse while the grid sweeper is chosen.

- `OverridesParser.parse_overrides`: an override Hydra cannot parse (`alpha=uniform(0,1,3)`,
  `x=['a' 'b']`) goes to the Grid engine, but only while a config is composed for a command that
  chose `hydra/sweeper=grid`, or while the grid sweeper parses its own flags. Everywhere else
  Hydra's own result and message stand, byte for byte. The one deliberate exception: a Grid
  expression in a multirun under another sweeper is refused with a message naming
  `hydra/sweeper=grid`.
- `ConfigLoaderImpl.load_configuration`: knows the run mode. When the command line does not
  choose a sweeper and an override fails Hydra's parse in a multirun, the sweeper is read off the
  defaults list (composed without the failing lines) before the failures are settled.
- `ConfigLoaderImpl._apply_overrides_to_config`: with the grid sweeper in a multirun, a list that
  the sweeper sweeps (`is_list_sweep`) is applied per job, not to the main config.

The sweeper checks that the compose hook saw its multirun (`multirun_hook_seen`): on a Hydra whose
call path bypasses it, the plugin refuses instead of running wrongly.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

SWEEPER_TARGET = "hydra_plugins.hydra_grid_sweeper.grid_sweeper.GridSweeper"
SWEEPER_GROUP = "hydra/sweeper"
SWEEPER_NAME = "grid"
_MARK = "_hydra_grid_sweeper_hook"


class _State(threading.local):
    """What the hooks know about the compose or parse in progress on this thread."""

    run_mode: Any = None  # Hydra's RunMode while a config is composed, else None
    sweeper_chosen: Any = None  # read off the defaults list when the command line is silent (None: unknown)
    sweeper_parse: bool = False  # the grid sweeper is parsing its own flags


_state = _State()
_multirun_configs: List[int] = []  # ids of the last configs a multirun composed through our hook


def multirun_hook_seen(config: Any) -> bool:
    """Whether `config` (the sweeper's) was composed by a multirun that went through our hook."""
    return id(config) in _multirun_configs


@contextmanager
def grid_parsing() -> Iterator[None]:
    """The grid sweeper parses its flags: Grid expressions parse, the engine's errors show."""
    previous, _state.sweeper_parse = _state.sweeper_parse, True
    try:
        yield
    finally:
        _state.sweeper_parse = previous


def _is_wrapped(func: Any) -> bool:
    return bool(getattr(func, _MARK, False))


def _mark(func: Any) -> Any:
    setattr(func, _MARK, True)
    return func


_UNKNOWN: Any = object()  # the defaults list not read yet


class _Undecided(Exception):
    """A multirun override failed Hydra's parse before the sweeper was known."""


def _sweeper_on_command_line(parsed: List[Any]) -> Optional[bool]:
    """True/False when the overrides choose a sweeper, None when they leave it to the defaults."""
    chosen: Optional[bool] = None
    for override in parsed:
        if override.key_or_group == SWEEPER_GROUP and not override.is_delete():
            chosen = override.value() == SWEEPER_NAME
    return chosen


def _install_parse_hook() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    original = OverridesParser.parse_overrides
    if _is_wrapped(original):
        return

    def parse_overrides(self: Any, overrides: List[str]) -> Any:
        if not _state.sweeper_parse and _state.run_mode is None:
            return original(self, overrides)
        parsed: List[Any] = []
        failures = []
        for line in overrides:
            try:
                parsed.extend(original(self, [line]))
            except (OverrideParseException, RecursionError) as error:  # deep nesting: RecursionError
                failures.append((len(parsed), line, error))
                parsed.append(None)
        if not failures:
            return parsed
        from hydra.types import RunMode

        from hydra_plugins.hydra_grid_sweeper._fallback import settle

        multirun = _state.sweeper_parse or _state.run_mode == RunMode.MULTIRUN
        chosen = True if _state.sweeper_parse else _sweeper_on_command_line([p for p in parsed if p])
        if chosen is None and multirun:
            if _state.sweeper_chosen is _UNKNOWN:
                raise _Undecided()
            chosen = _state.sweeper_chosen  # read off the defaults list; None if that failed
        for index, line, error in failures:
            parsed[index] = settle(self, original, line, error, chosen, multirun)
        return parsed

    OverridesParser.parse_overrides = _mark(parse_overrides)


def _install_compose_hooks() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.types import RunMode

    original_load = ConfigLoaderImpl.load_configuration
    if _is_wrapped(original_load):
        return
    original_apply = ConfigLoaderImpl._apply_overrides_to_config

    def load_configuration(self: Any, config_name: Any, overrides: List[str], run_mode: Any,
                           *args: Any, **kwargs: Any) -> Any:
        validated = kwargs.get("validate_sweep_overrides", args[1] if len(args) > 1 else True)
        previous = _state.run_mode, _state.sweeper_chosen
        # Hydra's probe for `hydra.mode` (get_mode: no validation, errors swallowed) is left to Hydra
        _state.run_mode, _state.sweeper_chosen = (run_mode if validated else None), _UNKNOWN
        try:
            try:
                cfg = original_load(self, config_name, overrides, run_mode, *args, **kwargs)
            except _Undecided:
                _state.sweeper_chosen = _sweeper_in_defaults(self, config_name, overrides, run_mode)
                cfg = original_load(self, config_name, overrides, run_mode, *args, **kwargs)
        finally:
            _state.run_mode, _state.sweeper_chosen = previous
        if run_mode == RunMode.MULTIRUN and validated:
            _multirun_configs[:] = [*_multirun_configs[-7:], id(cfg)]
        return cfg

    def apply_overrides_to_config(overrides: List[Any], cfg: Any) -> None:
        if not uses_grid_sweeper(cfg):
            return original_apply(overrides, cfg)
        if _state.run_mode == RunMode.MULTIRUN:
            overrides = [o for o in overrides if not is_list_sweep(o, cfg)]
        if any(o.key_or_group.startswith(PARAMS_PREFIX) for o in overrides):
            return _apply_with_open_params(original_apply, overrides, cfg)
        original_apply(overrides, cfg)

    ConfigLoaderImpl.load_configuration = _mark(load_configuration)
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_overrides_to_config)


def _sweeper_in_defaults(loader: Any, config_name: Any, overrides: List[str], run_mode: Any) -> Optional[bool]:
    """Whether the defaults list chooses the grid sweeper, read without the overrides Hydra rejects.

    Only reached when an override failed Hydra's parse in a multirun whose command line chooses
    no sweeper. None when the defaults list itself fails: then Hydra's own parse error stands, and
    no refusal names the grid sweeper. Hydra's warnings of this extra pass are not shown.
    """
    import warnings

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    previous, _state.run_mode = _state.run_mode, None  # Hydra's own parse from here on
    try:
        parser = OverridesParser.create()
        parsable = []
        for line in overrides:
            try:
                parser.parse_overrides([line])
            except (OverrideParseException, RecursionError):
                continue
            parsable.append(line)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            defaults = loader.compute_defaults_list(config_name, parsable, run_mode)
        return defaults.overrides.known_choices.get(SWEEPER_GROUP) == SWEEPER_NAME
    except Exception:
        return None
    finally:
        _state.run_mode = previous


PARAMS_PREFIX = "hydra.sweeper.params."


def _apply_with_open_params(original_apply: Any, overrides: List[Any], cfg: Any) -> None:
    """`hydra.sweeper.params.alpha=...` on the command line adds a flag, like a line of the YAML.

    `params` is a dict (null by default) that Hydra's struct mode closes; here it is opened for
    these overrides, so they need no `+`.
    """
    from omegaconf import open_dict

    sweeper = cfg.hydra.sweeper
    if sweeper.params is None:
        sweeper.params = {}
    with open_dict(sweeper.params):
        original_apply(overrides, cfg)


def uses_grid_sweeper(cfg: Any) -> bool:
    from omegaconf import OmegaConf

    target: Optional[str] = OmegaConf.select(cfg, "hydra.sweeper._target_", default=None,
                                             throw_on_resolution_failure=False)
    return target == SWEEPER_TARGET


def is_list_sweep(override: Any, cfg: Any) -> bool:
    """Whether the grid sweeper sweeps this `key=[...]` override of the app's config.

    Lists keep Hydra's meaning where the config holds a list (`tags=[dev]`, `split=[55,5,10]`,
    `tags=[]` are values), so existing commands mean what they meant. On a key that holds no
    list, or a new one, the list sweeps its elements (Grid's meaning); on a list key, a list of
    lists (`[[1,2],[3]]`) sweeps those lists.
    """
    if override.is_hydra_override() or override.is_delete() or override.is_sweep_override():
        return False
    value = override.value()
    if not isinstance(value, list):
        return False
    if not holds_list(cfg, override.key_or_group):
        return True
    return bool(value) and all(isinstance(element, list) for element in value)


def holds_list(cfg: Any, key: str) -> bool:
    """Whether `key` of `cfg` is a list node (a YAML list, or a field typed as a list, even if None)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_resolution_failure=False) if parent_key else cfg
    if isinstance(parent, ListConfig) and leaf.isdigit() and int(leaf) < len(parent):
        node = parent._get_node(int(leaf))
    elif isinstance(parent, DictConfig) and leaf in parent.keys():  # keys(): `in` hides ??? values
        node = parent._get_node(leaf)
    else:
        return False
    if isinstance(node, ListConfig):  # a list, a typed list (also None or ???)
        return True
    if node is not None and node._is_interpolation():  # `${tags}`: what it points to
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        return isinstance(value, ListConfig)
    return False


def install() -> None:
    """Install every hook once, however often Hydra's plugin scan executes this package."""
    _install_parse_hook()
    _install_compose_hooks()
