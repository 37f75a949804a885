"""The plain app on a Hydra whose multirun composes without ConfigLoaderImpl.load_configuration.

Hydra's main branch (1.4.dev) no longer calls it from `multirun`. Here it is replaced before the
plugin scan by a function that the plugin takes as already hooked, so its compose hook never runs.
"""
import os
import runpy
import sys

from hydra._internal.config_loader_impl import ConfigLoaderImpl


def load_configuration(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    return self._load_configuration_impl(*args, **kwargs)


load_configuration._hydra_grid_sweeper_hook = True  # type: ignore[attr-defined]
ConfigLoaderImpl.load_configuration = load_configuration

app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")
sys.argv[0] = app
runpy.run_path(app, run_name="__main__")
