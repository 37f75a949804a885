"""Structured schema of the compose-cache test app (tests/test_compose_cache.py)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class Schema:
    lr: float = 0.1
    epochs: int = 3
    flag: bool = False
    label: str = "x"
    ratio: Optional[float] = None
    sizes: List[int] = field(default_factory=lambda: [1, 2, 3])
    table: Dict[str, Any] = field(default_factory=dict)
    model: Any = None
    name: str = "?"
    tag: str = "?"
    items: List[Any] = field(default_factory=list)
    nested: Any = None
    maybe: Optional[Any] = None


def register() -> None:
    ConfigStore.instance().store(name="schema", node=Schema)
