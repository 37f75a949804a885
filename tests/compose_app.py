"""The compose test app (tests/apps/compose: typed schema, YAML, a config group, callbacks,
`env_copy`) composed for a multirun, and a node-for-node comparison of configs; shared by the
compose-cache and run-job tests."""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Tuple

from omegaconf import DictConfig, ListConfig, OmegaConf, ValueNode

APP_DIR = Path(__file__).resolve().parent / "apps" / "compose"
ENV_KEY = "COMPOSE_TEST_ENV"


@contextmanager
def compose_app(sweep_dir: Path) -> Iterator[Tuple[Any, DictConfig, Any]]:
    """(config loader, master config of a multirun into `sweep_dir`, ComposeCache) of the
    compose test app."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import setup_globals
    from hydra.types import RunMode

    from hydra_plugins.hydra_grid_sweeper._compose import ComposeCache

    sys.path.insert(0, str(APP_DIR))
    import schema  # noqa: E402 - the app's structured config, registered in the ConfigStore

    schema.register()
    previous_env = os.environ.get(ENV_KEY)
    os.environ[ENV_KEY] = "launcher"
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(
        task_name="compose_app", config_search_path=create_config_search_path(f"file://{APP_DIR / 'conf'}")
    )
    setup_globals()
    master = hydra.compose_config(
        config_name="config",
        overrides=[
            f"hydra.sweep.dir={sweep_dir}",
            "hydra.job.config.override_dirname.exclude_keys=[epochs]",
            "hydra.job.config.override_dirname.kv_sep=:",
        ],
        run_mode=RunMode.MULTIRUN,
    )
    OmegaConf.resolve(OmegaConf.create({"t": "${now:%H-%M-%S-%f}"}, parent=master))  # a resolver cache
    try:
        yield hydra.config_loader, master, ComposeCache(hydra.config_loader, master)
    finally:
        GlobalHydra.instance().clear()
        ConfigStore.instance().repo.pop("schema.yaml", None)  # later tests pickle the store
        sys.path.remove(str(APP_DIR))
        sys.modules.pop("schema", None)
        if previous_env is None:
            os.environ.pop(ENV_KEY, None)
        else:
            os.environ[ENV_KEY] = previous_env


def assert_same_nodes(expected: Any, got: Any, path: str = "") -> None:
    """Equal node for node: node class, metadata (types, flags, key), value or interpolation."""
    where = path or "<root>"
    assert type(got) is type(expected), f"{where}: {type(got).__name__} != {type(expected).__name__}"
    em, gm = expected._metadata, got._metadata
    for field in ("ref_type", "object_type", "optional", "key", "flags"):
        assert getattr(gm, field, None) == getattr(em, field, None), f"{where}: {field} differs"
    if isinstance(expected, ValueNode):
        a, b = expected._value(), got._value()
        same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
        assert same and type(a) is type(b), f"{where}: {b!r} != {a!r}"
        return
    if expected._is_none() or expected._is_missing() or expected._is_interpolation():
        assert got._value() == expected._value(), f"{where}: {got._value()!r} != {expected._value()!r}"
        return
    if isinstance(expected, DictConfig):
        assert list(got.keys()) == list(expected.keys()), f"{where}: keys {list(got.keys())} != {list(expected.keys())}"
        for key in expected.keys():
            assert_same_nodes(expected._get_node(key), got._get_node(key), f"{path}.{key}".lstrip("."))
    else:
        assert isinstance(expected, ListConfig)
        assert len(got) == len(expected), f"{where}: length differs"
        for i in range(len(expected)):
            assert_same_nodes(expected._get_node(i), got._get_node(i), f"{path}[{i}]")
