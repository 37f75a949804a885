"""The plain app on a Hydra whose multirun composes its config where the plugin's hook can't see.

Hydra's main branch (1.4.dev) no longer calls `ConfigLoaderImpl.load_configuration` from
`multirun`. Two ways to stand in for it, chosen by BYPASS:
- `all`: `load_configuration` is replaced before the plugin scan by a function the plugin takes
  as already hooked, so none of its compose hooks runs;
- `multirun` (default): Hydra's `get_mode` probe still goes through the hook, but the config the
  multirun hands the sweeper is one the hook never returned.
"""
import copy
import os
import runpy
import sys

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra
from hydra.types import RunMode

if os.environ.get("BYPASS") == "all":
    def load_configuration(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._load_configuration_impl(*args, **kwargs)

    load_configuration._hydra_grid_sweeper_hook = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_configuration
else:
    compose_config = Hydra.compose_config

    def compose_elsewhere(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        cfg = compose_config(self, *args, **kwargs)
        if kwargs.get("with_log_configuration") and kwargs.get("run_mode") == RunMode.MULTIRUN:
            return copy.deepcopy(cfg)  # the multirun's config: not the one the hook composed
        return cfg

    Hydra.compose_config = compose_elsewhere

app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")
sys.argv[0] = app
runpy.run_path(app, run_name="__main__")
