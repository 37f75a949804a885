"""Hydra plugins of hydra-grid-sweeper: `hydra/sweeper=grid`, `hydra/launcher=grid_local|grid_slurm`.

Hydra's plugin scan imports this package in every Hydra app of the environment, chosen or not, so
it does only what costs next to nothing: it installs the grammar hooks (which load the engine only
when a command chooses the grid sweeper) and names the plugin's configs in the ConfigStore (built
only when chosen).
"""
from hydra_plugins.hydra_grid_sweeper import _grammar, _lazy_configs

_grammar.install()
_lazy_configs.register()
