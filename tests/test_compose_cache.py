"""The compose cache gives every job the config that Hydra's `load_sweep_config` gives it.

A property test draws override sets (values of every type, `+key`, `++key`, `~key`,
interpolations, group choices, `+group`, `~group`, `hydra.*` keys, callbacks, invalid values) on
a small app (structured schema + YAML + config group, tests/apps/compose) and compares the
cache's config with Hydra's node for node (`hydra` included: types, flags, unresolved
interpolations, resolver cache), or the error with Hydra's error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
from compose_app import ENV_KEY, assert_same_nodes, compose_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf


@pytest.fixture(scope="module")
def hydra_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Any, DictConfig, Any]]:
    """(config loader, master config of a multirun, ComposeCache) of the compose test app."""
    with compose_app(tmp_path_factory.mktemp("sweep")) as app:
        yield app


def outcome(compose: Any) -> Tuple[str, Any]:
    try:
        return "config", compose()
    except Exception as error:  # noqa: BLE001 - the error is the outcome to compare
        return "error", f"{type(error).__name__}: {error}"


# -- override sets -------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    from hydra.core.override_parser.types import Quote, QuotedString

    return QuotedString(text=text, quote=Quote.single).with_quotes()


_floats = st.floats(allow_nan=True, allow_infinity=True).map(repr)
_ints = st.integers(-(10**9), 10**9).map(str)
_bools = st.sampled_from(["true", "false", "True", "FALSE"])
_strings = st.text(st.sampled_from("abcXYZ019 _-.:/,=$'\"\\"), max_size=8).map(_quoted)
_plain_words = st.sampled_from(["abc", "x_y", "hello-world", "a.b"])
_interpolations = st.sampled_from(
    ["${lr}", "${model.width}", "'${name}-${epochs}'", "${oc.env:HOME}", "${hydra:job.num}"]
)
_scalars = st.one_of(_floats, _ints, _bools, _strings, _plain_words, _interpolations, st.just("null"))
_lists = st.lists(st.one_of(_ints, _plain_words, _floats), max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
_dicts = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.one_of(_ints, _plain_words)), max_size=3).map(
    lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"
)
_values = st.one_of(_scalars, _lists, _dicts)
_keys = st.sampled_from([
    "lr", "epochs", "flag", "label", "ratio", "sizes", "table", "name", "tag", "items", "maybe",
    "model.width", "model.act", "model.dropout", "nested.a", "nested.b.c", "nested", "new_key", "table.k",
])


def _value_override() -> Any:
    """Any prefix, key and value: mostly errors (wrong type, missing key), compared too."""
    plain = st.tuples(st.sampled_from(["", "+", "++"]), _keys, _values).map(lambda t: f"{t[0]}{t[1]}={t[2]}")
    delete = st.tuples(_keys, st.one_of(st.none(), _scalars)).map(
        lambda t: f"~{t[0]}" if t[1] is None else f"~{t[0]}={t[1]}"
    )
    return st.one_of(plain, delete)


_numbers = st.one_of(_floats, _ints)
_texts = st.one_of(_strings, _plain_words, _interpolations)
_typed = st.one_of(  # values the schema accepts, so that most jobs compose
    st.tuples(st.just("lr"), st.one_of(_numbers, _interpolations)),
    st.tuples(st.just("epochs"), st.one_of(_ints, st.just("${model.depth}"))),
    st.tuples(st.just("flag"), _bools),
    st.tuples(st.sampled_from(["label", "name", "tag", "model.act", "nested.b.c"]), _texts),
    st.tuples(st.just("ratio"), st.one_of(_floats, st.just("null"))),
    st.tuples(st.sampled_from(["sizes", "items"]), st.lists(_ints, max_size=3).map(lambda xs: f"[{','.join(xs)}]")),
    st.tuples(st.sampled_from(["model.width", "model.depth"]), _ints),
    st.tuples(st.sampled_from(["maybe", "nested.a", "nested.b"]), _values),
    st.tuples(st.sampled_from(["+new_key", "++new_key", "+table.k", "++nested.b.d", "+model.extra"]), _values),
    st.tuples(st.sampled_from(["~nested.a", "~maybe", "~nested.b.c", "~model.act"]), st.none()),
).map(lambda t: t[0] if t[1] is None else f"{t[0]}={t[1]}")


_composition = st.sampled_from([
    "model=small", "model=large", "model=large", "+extra=on", "~model", "model@other=large", "model=nope",
    "hydra.job.chdir=true", "hydra.job.name=renamed", "hydra.verbose=true",
    "+hydra.callbacks.more={_target_:hydra.experimental.callback.Callback}",
    "hydra.sweep.subdir=${hydra.job.override_dirname}", "lr=1,2",
])
_jobs = st.lists(st.one_of(_typed, _typed, _typed, _typed, _value_override(), _composition), max_size=5)


@settings(max_examples=int(os.environ.get("COMPOSE_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(overrides=_jobs, env=st.sampled_from(["launcher", "job"]))
def test_cached_config_equals_load_sweep_config(hydra_app: Any, overrides: List[str], env: str) -> None:
    loader, master, cache = hydra_app
    os.environ[ENV_KEY] = env  # env_copy is read when a job is composed, in the job's process
    try:
        expected = outcome(lambda: loader.load_sweep_config(master, list(overrides)))
        hits = cache.hits
        got = outcome(lambda: cache.compose(overrides))
    finally:
        os.environ[ENV_KEY] = "launcher"
    assert got[0] == expected[0], f"{overrides}: cache {got[1]} but Hydra {expected[1]}"
    if expected[0] == "error":
        assert got[1] == expected[1]
        checked = outcome(lambda: cache.check(overrides))
        assert checked == ("error", expected[1])
        return
    assert_same_nodes(expected[1], got[1])
    assert OmegaConf.get_cache(got[1]) == OmegaConf.get_cache(expected[1])
    assert cache.check(overrides) is None
    if cache.plan(overrides) is not None:  # a value-only job Hydra composes came from a base
        assert cache.hits == hits + 1, f"{overrides}: composed by Hydra, not from its base"


def test_value_jobs_come_from_one_base_per_group_choice(hydra_app: Any) -> None:
    loader, master, _ = hydra_app
    from hydra_plugins.hydra_grid_sweeper._compose import ComposeCache

    cache = ComposeCache(loader, master)
    calls: List[List[str]] = []
    original = loader.load_sweep_config

    def counting(master_config: DictConfig, overrides: List[str]) -> DictConfig:
        calls.append(list(overrides))
        return original(master_config, overrides)

    loader.load_sweep_config = counting
    try:
        jobs = [[f"lr={lr}", f"model={m}", "+new=1"] for lr in (0.1, 0.2, 0.3) for m in ("small", "large")]
        jobs.append(["hydra.job.chdir=true", "lr=0.5"])
        configs = [cache.job_config(job, num, f"id{num}") for num, job in enumerate(jobs)]
    finally:
        loader.load_sweep_config = original
    assert calls == [["model=small"], ["model=large"], ["hydra.job.chdir=true", "lr=0.5"]]
    assert (cache.hits, cache.misses) == (6, 1)
    assert [c.lr for c in configs[:6]] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    assert configs[3].model.width == 64 and configs[3].hydra.runtime.choices.model == "large"
    assert configs[3].hydra.job.num == 3 and configs[3].hydra.job.id == "id3"
    assert list(configs[3].hydra.overrides.task) == jobs[3]
    assert configs[3].hydra.job.override_dirname == "+new:1,lr:0.2,model:large"
    assert configs[6].hydra.job.chdir is True


@pytest.mark.parametrize("launcher", ["grid_local", "basic"])
def test_sweeper_checks_every_job_before_launching_any(tmp_path: Path, launcher: str) -> None:
    """The last jobs' value does not fit the typed field: found before launching, those jobs fail
    with Hydra's error and are never launched, the others run (tests/test_config_error_one_job.py)."""
    from sweep_helpers import APPS, run_app

    sweep_dir = tmp_path / "sweep"
    proc = run_app(APPS / "sweeper" / "app.py", [
        "-m", "hydra/sweeper=grid", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}",
        "beta=[1, 2, 'three']", "db=mysql,postgresql",
    ], tmp_path)
    assert proc.returncode != 0
    assert "beta" in proc.stderr and "three" in proc.stderr, proc.stderr[-2000:]
    ran = sorted(int(p.parent.name) for p in sweep_dir.glob("*/received.json"))
    assert ran == [0, 1, 2, 3]  # jobs 4 and 5 (beta='three') never launched


def _task(cfg: DictConfig) -> Any:
    return cfg.lr


def test_slurm_job_pickle_carries_its_config_not_what_jobs_share(hydra_app: Any, tmp_path: Path) -> None:
    import cloudpickle
    from hydra._internal.callbacks import Callbacks
    from hydra.core.singleton import Singleton
    from hydra.types import HydraContext

    from hydra_plugins.hydra_grid_sweeper.slurm_launcher import SlurmHydraJob, _dump_shared

    loader, master, cache = hydra_app
    context = HydraContext(config_loader=loader, callbacks=Callbacks(master))
    state = Singleton.get_state()
    shared = _dump_shared(SlurmHydraJob(context, _task, master, [], 0, state), tmp_path)
    alone = SlurmHydraJob(context, _task, master, ["lr=0.25", "model=large"], 5, state, cache=cache)
    job = SlurmHydraJob(context, _task, master, ["lr=0.25", "model=large"], 5, state, cache=cache,
                        shared_path=shared)
    data = cloudpickle.dumps(job)
    assert len(data) * 2 < len(cloudpickle.dumps(alone))
    loaded = cloudpickle.loads(data)
    assert_same_nodes(loader.load_sweep_config(master, ["lr=0.25", "model=large"]), loaded.composed)
    assert loaded.task_function is _task and loaded.config == master and loaded.hydra_context is not None
    again = cloudpickle.loads(cloudpickle.dumps(loaded))  # a requeue pickles it on the node
    assert again.composed.model.width == 64 and again.shared_path == shared


def test_check_tries_each_distinct_line_once_and_overlapping_keys_together(hydra_app: Any) -> None:
    loader, master, _ = hydra_app
    from hydra_plugins.hydra_grid_sweeper._compose import ComposeCache

    cache = ComposeCache(loader, master)
    for lr in range(10):
        for epochs in range(10):
            cache.check([f"lr={lr / 10}", f"epochs={epochs}", "model.width=3"])
    assert len(cache._lines) == 21 and all(cache._lines.values())
    cache.check(["+brand_new=1"])
    cache.check(["+brand_new=2"])  # each passes alone; together Hydra refuses the second
    expected = outcome(lambda: loader.load_sweep_config(master, ["+brand_new=1", "+brand_new=2"]))
    assert expected[0] == "error"
    assert outcome(lambda: cache.check(["+brand_new=1", "+brand_new=2"])) == expected
    expected = outcome(lambda: loader.load_sweep_config(master, ["lr=0.5", "epochs=many"]))
    assert expected[0] == "error" and "epochs" in expected[1]
    assert outcome(lambda: cache.check(["lr=0.5", "epochs=many"])) == expected
