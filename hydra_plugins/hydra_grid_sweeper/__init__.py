"""Hydra plugins of hydra-grid-sweeper: `hydra/sweeper=grid`, `hydra/launcher=grid_local|grid_slurm`.

Importing the package (Hydra's plugin scan does, before it parses the command line) teaches
Hydra's override parser the Grid expressions.
"""
from hydra_plugins.hydra_grid_sweeper import _grammar

_grammar.install()
