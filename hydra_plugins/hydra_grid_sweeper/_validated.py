"""Keep the job configs a sweeper composes to validate a batch, so that jobs need not compose again."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig


class ValidatedConfigs:
    """Keeps the job configs that the sweeper composes to validate a batch before `launch()`.

    Hydra's sweepers compose every job's config once to check it, then drop it; a job whose
    config was kept here does not compose it again. Only configs composed from the launcher's own
    master config are kept, at most `limit` per batch; the others are composed in the job's
    process, in parallel.
    """

    def __init__(self, loader: Any, master_config: DictConfig, limit: int = 512) -> None:
        self.master_config = master_config
        self.limit = limit
        self.configs: Dict[Tuple[str, ...], DictConfig] = {}
        # a launcher set up again on the same loader replaces the earlier keeper, not wraps it
        original = getattr(loader.load_sweep_config, "_unwrapped", loader.load_sweep_config)

        def load_sweep_config(master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
            config = original(master_config, sweep_overrides)
            if master_config is self.master_config and len(self.configs) < self.limit:
                self.configs[tuple(sweep_overrides)] = config
            return config

        load_sweep_config._unwrapped = original  # type: ignore[attr-defined]
        loader.load_sweep_config = load_sweep_config

    def take(self, overrides: Sequence[str]) -> Optional[DictConfig]:
        return self.configs.pop(tuple(overrides), None)

    def clear(self) -> None:
        self.configs.clear()
