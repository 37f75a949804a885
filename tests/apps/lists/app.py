"""Test app for list semantics: list fields (typed and YAML) beside scalars; records what it got."""
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, OmegaConf


class Criterion(Enum):
    gini = 1
    entropy = 2


@dataclass
class Typed:
    tags: List[str] = field(default_factory=lambda: ["dev"])
    split: List[int] = field(default_factory=lambda: [55000, 5000, 10000])
    extra: Optional[List[str]] = None
    beta: int = 1
    name: str = "bert"
    anything: Any = None
    criterion: Criterion = Criterion.gini


ConfigStore.instance().store(name="typed", node=Typed)


@dataclass
class More:
    """List keys in the shapes that are easy to misread: required, interpolated, inside a list."""

    required: List[str] = MISSING
    tags: List[str] = field(default_factory=lambda: ["dev"])
    logger: Any = field(default_factory=lambda: {"tags": "${tags}"})
    layers: Any = field(default_factory=lambda: [[1, 2], [3]])
    beta: int = 1


ConfigStore.instance().store(name="more", node=More)


@hydra.main(version_base=None, config_path=".", config_name=os.environ.get("APP_CONFIG", "typed"))
def main(cfg: Any) -> None:
    received = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    received["job_num"] = OmegaConf.select(HydraConfig.get(), "job.num", throw_on_missing=False)
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "received.json"), "w") as out:
        json.dump(received, out)


if __name__ == "__main__":
    main()
