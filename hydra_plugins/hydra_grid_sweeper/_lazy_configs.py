"""The plugin's structured configs in Hydra's ConfigStore, built only when a command chooses them.

`ConfigStore.store` turns a dataclass into an OmegaConf config at once, which cost every Hydra app
in the environment milliseconds at the plugin scan, chosen or not. Here each config is a node in
the store's tree (`hydra/sweeper/grid.yaml`, ...) whose `node` is built from its dataclass the
first time Hydra loads it. Listing the group (`--help`, tab completion) shows it as before.
"""
import importlib
from typing import Any, Dict, Tuple

from hydra.core.config_store import ConfigNode, ConfigStore

PROVIDER = "hydra-grid-sweeper"
_PACKAGE = "hydra_plugins.hydra_grid_sweeper"
CONFIGS = (  # group, name, module, dataclass
    ("hydra/sweeper", "grid", f"{_PACKAGE}._sweeper_config", "GridSweeperConf"),
    ("hydra/launcher", "grid_local", f"{_PACKAGE}._local_config", "GridLocalLauncherConf"),
    ("hydra/launcher", "grid_slurm", f"{_PACKAGE}._slurm_config", "GridSlurmLauncherConf"),
)


_BUILT: Dict[Tuple[str, str], Any] = {}


class LazyConfigNode(ConfigNode):
    """A ConfigNode whose `node` is made from its dataclass on first use (picklable: names only)."""

    def __init__(self, name: str, group: str, module: str, dataclass_name: str) -> None:
        # no ConfigNode.__init__: `node` stays unset until __getattr__ builds it
        self.name, self.group, self.package, self.provider = name, group, None, PROVIDER
        self.module, self.dataclass_name = module, dataclass_name

    def __getattr__(self, attribute: str) -> Any:  # called only for attributes not yet set
        if attribute != "node" or "module" not in self.__dict__:
            raise AttributeError(attribute)
        from omegaconf import OmegaConf

        key = (self.module, self.dataclass_name)
        if key not in _BUILT:  # ConfigStore.load reads `node` on a copy: build once, here
            _BUILT[key] = OmegaConf.structured(getattr(importlib.import_module(self.module), self.dataclass_name))
        self.node = _BUILT[key]  # ConfigStore.load deep-copies it before use
        return self.node


def register() -> None:
    """Put the plugin's configs in the ConfigStore, once."""
    store = ConfigStore.instance()
    for group, name, module, dataclass_name in CONFIGS:
        folder = store.repo
        for part in group.split("/"):
            folder = folder.setdefault(part, {})
        folder.setdefault(f"{name}.yaml", LazyConfigNode(f"{name}.yaml", group, module, dataclass_name))
