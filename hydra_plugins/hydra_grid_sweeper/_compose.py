"""Compose once per group choice: job configs in milliseconds instead of ~80 ms each.

Hydra's `load_sweep_config` composes every job from scratch: it re-reads the configs, re-runs the
defaults list and merges everything again (~80 ms for a small structured config), although the
jobs of a sweep usually differ only in values. `ComposeCache` composes one config per distinct
set of config-group choices (the "base", with Hydra's own `load_sweep_config`) and makes each
job's config from it: a copy, the job's value overrides applied with Hydra's own
`_apply_overrides_to_config`, and the `hydra.*` fields that `load_sweep_config` sets per job
(`hydra.overrides.task`, `hydra.job.override_dirname`, `hydra.job.env_set` from `env_copy`)
set as it sets them. `runtime.choices`, `runtime.config_sources`, `hydra.overrides.hydra` and the
rest depend only on the group choices and the launcher's own overrides, so the base has them.

A job falls back to `load_sweep_config` when one of its overrides could change composition: a
`hydra.*` key, a config group other than a plain `group=option` choice (`+group=`, `~group`,
`++group`, `group@pkg=`, a dict value), a sweep, anything with a package, or a line the parser
rejects. A job whose fast path raises is composed again by Hydra, so errors are Hydra's own.
Equivalence with `load_sweep_config`, node for node, is tested (tests/test_compose_cache.py).
"""
from __future__ import annotations

import copy
import os
import pickle
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

Plan = Tuple[Tuple[str, ...], List[Any], List[Any]]  # (group lines, value overrides, all parsed)
_MAX_PARSED = 200_000  # parsed override lines kept (a random search may make each line unique)


class ComposeCache:
    """Job configs of one master config, composed once per distinct group choice.

    Bases are kept for the launcher's life (a sweep has few distinct group choices); at most
    `max_bases` of them, beyond which jobs fall back to Hydra. `hits` and `misses` count the jobs
    made from a base and those composed by Hydra.
    """

    def __init__(self, loader: Any, master_config: DictConfig, max_bases: int = 256) -> None:
        self.loader = loader
        self.master_config = master_config
        self.max_bases = max_bases
        self.hits = 0
        self.misses = 0
        self._bases: Dict[Tuple[str, ...], Optional[DictConfig]] = {}  # None: Hydra refused it
        self._app_bases: Dict[Tuple[str, ...], Any] = {}  # bases without `hydra`, to check
        self._frozen: Dict[Tuple[str, ...], Any] = {}  # bases pickled: copies in ~1 ms, not ~4
        self._parsed: Dict[str, Any] = {}
        self._lines: Dict[Tuple[Tuple[str, ...], Any], bool] = {}  # (groups, line): applies alone
        self._groups: Dict[str, bool] = {}
        self._repo: Any = None

    # -- which jobs can use a base -------------------------------------------------------------
    def plan(self, overrides: Sequence[str]) -> Optional[Plan]:
        """(the job's group-choice lines, its parsed value overrides, all its overrides parsed), or
        None: compose with Hydra."""
        groups: List[str] = []
        values: List[Any] = []
        parsed: List[Any] = []
        for line in overrides:
            override = self._parse(line)
            parsed.append(override)
            if override is None or override.is_hydra_override() or override.is_sweep_override():
                return None
            if override.package is not None:
                return None
            if self._is_group(override.key_or_group):
                value = override.value()
                plain = not (override.is_add() or override.is_force_add() or override.is_delete())
                if not plain or not isinstance(value, str):
                    return None
                groups.append(line)
            else:
                values.append(override)
        return tuple(groups), values, parsed

    def _parse(self, line: str) -> Any:
        if line not in self._parsed:
            from hydra.core.override_parser.overrides_parser import OverridesParser

            if len(self._parsed) >= _MAX_PARSED:
                self._parsed.clear()
            try:
                parsed = OverridesParser.create().parse_overrides([line])
                self._parsed[line] = parsed[0] if len(parsed) == 1 else None
            except Exception:  # noqa: BLE001 - Hydra's compose reports it
                self._parsed[line] = None
        return self._parsed[line]

    def _is_group(self, key: str) -> bool:
        """Whether `key` is a config group, in the repository Hydra composes with (search path
        extended by the primary config's `hydra.searchpath`)."""
        if key not in self._groups:
            try:
                self._groups[key] = bool(self._repository().group_exists(key))
            except Exception:  # noqa: BLE001 - unknown: treat as a group, i.e. let Hydra compose
                self._groups[key] = True
        return self._groups[key]

    def _repository(self) -> Any:
        if self._repo is None:
            try:  # the repository load_configuration builds (private in Hydra 1.3)
                _, self._repo = self.loader._parse_overrides_and_create_caching_repo(
                    self.master_config.hydra.job.config_name,
                    list(self.master_config.hydra.overrides.hydra),
                )
            except Exception:  # noqa: BLE001 - another loader: its plain repository
                self._repo = self.loader.repository
        return self._repo

    def _base(self, groups: Tuple[str, ...]) -> Optional[DictConfig]:
        """The config composed with these group choices; None when Hydra refuses them (each such
        job is then composed by Hydra, for Hydra's own error) or too many bases exist."""
        if groups not in self._bases:
            if len(self._bases) >= self.max_bases:
                return None
            try:
                self._bases[groups] = self.loader.load_sweep_config(self.master_config, list(groups))
            except Exception:  # noqa: BLE001 - the jobs' own compose raises it
                self._bases[groups] = None
        return self._bases[groups]

    # -- job configs ---------------------------------------------------------------------------
    def prepare(self, jobs: Sequence[Sequence[str]]) -> None:
        """Compose the bases these jobs need now (before forking, so that children share them)."""
        for overrides in jobs:
            plan = self.plan(overrides)
            if plan is not None:
                self._base(plan[0])

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's config, equal to `load_sweep_config(master_config, overrides)`."""
        config = self._from_base(overrides)
        if config is None:
            self.misses += 1
            return self.loader.load_sweep_config(self.master_config, list(overrides))
        self.hits += 1
        return config

    def job_config(self, overrides: Sequence[str], num: int, job_id: Any) -> DictConfig:
        """The job's config with `hydra.job.num` and `hydra.job.id` set, as launchers set them."""
        return _numbered(self.compose(overrides), num, job_id)

    def job_config_from_base(self, overrides: Sequence[str], num: int, job_id: Any
                             ) -> Optional[DictConfig]:
        """`job_config`, or None where it would take Hydra's compose (~80 ms): for work done
        ahead in a launcher that must stay responsive."""
        config = self._from_base(overrides)
        if config is None:
            return None
        self.hits += 1
        return _numbered(config, num, job_id)

    def _from_base(self, overrides: Sequence[str]) -> Optional[DictConfig]:
        plan = self.plan(overrides)
        if plan is None:
            return None
        base = self._base(plan[0])
        if base is None:
            return None
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname

        config = self._copy(self._frozen, plan[0], base)
        try:
            ConfigLoaderImpl._apply_overrides_to_config(plan[1], config)
        except Exception:  # noqa: BLE001 - composed again by Hydra, for Hydra's own error
            return None
        task = plan[2]
        hydra = config.hydra
        hydra.overrides.task = [str(o.input_line) for o in task]
        dirname = hydra.job.config.override_dirname
        hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
        refresh_env_copy(config)
        OmegaConf.copy_cache(from_config=self.master_config, to_config=config)
        return config

    @staticmethod
    def _copy(frozen: Dict[Any, Any], key: Any, config: Any) -> Any:
        """A deep copy of `config`, unpickled from bytes kept per key (OmegaConf's deepcopy walks
        every node in Python; unpickling is ~5x faster). A config that does not pickle (an
        unpicklable value in it) is deep-copied."""
        data = frozen.get(key)
        if data is None:
            try:
                data = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - deepcopy from now on
                data = b""
            frozen[key] = data
        return pickle.loads(data) if data else copy.deepcopy(config)

    def check(self, overrides: Sequence[str]) -> None:
        """Raise what `load_sweep_config` would raise for this job, without keeping its config.

        Value overrides never touch `hydra`, so they are applied to a copy of the base without
        it (a few times cheaper than the whole config); other jobs are composed by Hydra. When
        the job's value overrides touch disjoint parts of the config (no key is another's prefix),
        each applies or fails on its own: each distinct line is then tried once per base and
        remembered, so a grid of 10^4 jobs costs its few hundred distinct lines. A job with a
        failing line is checked whole, for Hydra's own error.
        """
        plan = self.plan(overrides)
        base = None if plan is None else self._base(plan[0])
        if plan is None or base is None:
            self.loader.load_sweep_config(self.master_config, list(overrides))
            return
        if _disjoint(plan[1]) and all(self._line_ok(plan[0], base, o) for o in plan[1]):
            return
        try:
            self._apply_to_app(plan[0], base, plan[1])
        except Exception:  # noqa: BLE001 - Hydra's own compose raises Hydra's own error
            self.loader.load_sweep_config(self.master_config, list(overrides))

    def _apply_to_app(self, groups: Tuple[str, ...], base: DictConfig, values: List[Any]) -> None:
        app = self._app_bases.get(groups)
        if app is None:
            app = copy.deepcopy(base)
            with read_write(app), open_dict(app):
                del app["hydra"]
            self._app_bases[groups] = app
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        ConfigLoaderImpl._apply_overrides_to_config(values, self._copy(self._frozen, ("app", *groups), app))

    def _line_ok(self, groups: Tuple[str, ...], base: DictConfig, override: Any) -> bool:
        key = (groups, override.input_line)
        if key not in self._lines:
            if len(self._lines) >= _MAX_PARSED:
                self._lines.clear()
            try:
                self._apply_to_app(groups, base, [override])
                self._lines[key] = True
            except Exception:  # noqa: BLE001 - the job is checked whole
                self._lines[key] = False
        return self._lines[key]


def _numbered(config: DictConfig, num: int, job_id: Any) -> DictConfig:
    with open_dict(config.hydra.job) as job:
        job.id = job_id
        job.num = num
    return config


def _disjoint(values: List[Any]) -> bool:
    """Whether no override's key is another's (or a prefix of it): then each one's outcome does
    not depend on the others. Keys with brackets count as overlapping."""
    paths = []
    for override in values:
        key = override.key_or_group
        if not key or "[" in key or "]" in key:
            return False
        paths.append(tuple(key.split(".")))
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            if a[: len(b)] == b or b[: len(a)] == a:
                return False
    return True


def refresh_env_copy(config: DictConfig) -> None:
    """`hydra.job.env_set[key] = os.environ[key]` for each key of `hydra.job.env_copy`, as
    `load_sweep_config` does, in this process (a job's environment may differ from the
    launcher's)."""
    job = config.hydra.job
    if not job.env_copy:
        return
    with open_dict(job):
        for key in job.env_copy:
            job.env_set[key] = os.environ[key]


_installed: List[ComposeCache] = []  # the cache of the launcher set up last (one at a time)


def install(loader: Any, master_config: DictConfig) -> ComposeCache:
    """The ComposeCache of this master config, also answering `loader.load_sweep_config` for it.

    Launchers call this in `setup()`: any sweeper that composes every job's config to check a
    batch (Hydra's BasicSweeper does) then gets each in milliseconds; other master configs go to
    Hydra's own method. Installing again on the same loader replaces the earlier cache.
    """
    current = loader.__dict__.get("load_sweep_config")
    original = current.original if isinstance(current, _CachedLoad) else loader.load_sweep_config
    cache = ComposeCache(_Unwrapped(loader, original), master_config)
    loader.load_sweep_config = _CachedLoad(cache, original)
    _installed[:] = [cache]
    return cache


class _CachedLoad:
    """`loader.load_sweep_config` through a ComposeCache for the cache's master config.

    Pickled (a spawned job, a Slurm job's Hydra context) it becomes Hydra's own method again, so
    the cache and its configs never travel with the loader.
    """

    def __init__(self, cache: ComposeCache, original: Any) -> None:
        self.cache = cache
        self.original = original

    def __call__(self, master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
        if master_config is self.cache.master_config:
            return self.cache.compose(sweep_overrides)
        return self.original(master_config, sweep_overrides)

    def __reduce__(self) -> Any:
        if isinstance(self.original, types.MethodType):
            return types.MethodType, (self.original.__func__, self.original.__self__)
        return _same, (self.original,)  # another wrapper than ours: pickled as it is


def _same(value: Any) -> Any:
    return value


def cache_for(loader: Any, master_config: DictConfig) -> ComposeCache:
    """The cache our launcher installed for this master config, else one made (and kept) here,
    for a sweeper's check of its jobs with any other launcher."""
    for cache in _installed:
        if cache.master_config is master_config and getattr(cache.loader, "loader", cache.loader) is loader:
            return cache
    cache = ComposeCache(loader, master_config)
    _installed[:] = [cache]
    return cache


class _Unwrapped:
    """A config loader whose `load_sweep_config` is Hydra's own (not the installed shortcut)."""

    def __init__(self, loader: Any, load_sweep_config: Any) -> None:
        self.loader = loader
        self.load_sweep_config = load_sweep_config

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)
