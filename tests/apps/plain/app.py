"""A plain Hydra app that never asks for the grid sweeper: prints the config it got, with types."""
from dataclasses import dataclass, field
from typing import Any, List

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf


@dataclass
class Schema:
    x: int = 1
    name: str = "bert"
    rate: float = 0.5
    tags: List[str] = field(default_factory=lambda: ["dev"])
    db: Any = None


ConfigStore.instance().store(name="schema", node=Schema)


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    print(" ".join(f"{key}={value!r}:{type(value).__name__}" for key, value in values.items()))


if __name__ == "__main__":
    main()
