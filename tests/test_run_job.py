"""`run_hydra_job` runs a job exactly as Hydra's `run_job` does, with fewer copies.

Each case runs one job of the compose test app (typed schema, config group, callbacks,
`env_copy`) twice from equal configs: once through Hydra's `run_job`, once through ours, and
compares everything a job, a callback or a launcher can see: the task's config and what
`HydraConfig` / `${hydra:...}` answered inside the task, the working dir, the environment, the
config the callbacks got, the `JobReturn` (node for node), the files written (`.hydra/*.yaml` byte
for byte), and the state left behind (`HydraConfig`, cwd, the job config changed in place).
The YAML emitter shortcut is checked on its own against `OmegaConf.to_yaml`.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from compose_app import ENV_KEY, assert_same_nodes, compose_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict
from test_compose_cache import _typed


@pytest.fixture(scope="module")
def hydra_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Any, DictConfig, Any]]:
    """(config loader, master config of a multirun, ComposeCache) of the compose test app."""
    with compose_app(tmp_path_factory.mktemp("sweep")) as app:
        yield app


class _Recorder:
    """Callbacks that keep what they were handed, as Hydra's `Callbacks` would hand it."""

    def __init__(self) -> None:
        self.calls: List[Any] = []

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.calls.append(("start", copy.deepcopy(config), _hydra_view(), sorted(kwargs)))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.calls.append(("end", copy.deepcopy(config), _hydra_view(), job_return, sorted(kwargs)))


def _hydra_view() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return copy.deepcopy(HydraConfig.instance().cfg)


def _task(fail: bool) -> Any:
    def task(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        seen = HydraConfig.get()
        logging.getLogger("run_job_test").info("hello from the task")
        task.seen = {  # type: ignore[attr-defined]
            "cfg": copy.deepcopy(cfg),
            "hydra_view": copy.deepcopy(HydraConfig.instance().cfg),
            "view_parent_keys": list(seen._get_parent().keys()),
            "view_readonly": OmegaConf.is_readonly(seen),
            "resolved": OmegaConf.to_container(OmegaConf.create({
                "num": "${hydra:job.num}", "out": "${hydra:runtime.output_dir}",
                "dirname": "${hydra:job.override_dirname}", "choice": "${hydra:runtime.choices.model}",
            }), resolve=True),
            "cwd": os.getcwd(),
            "env": os.environ.get(ENV_KEY),
        }
        if fail:
            raise ValueError(f"job {seen.job.num} fails on purpose")
        return {"lr": cfg.lr, "num": seen.job.num}

    return task


def _files(directory: Path) -> Dict[str, Any]:
    """Relative path -> bytes for `.hydra/*`, "exists" for the rest (logs carry timestamps)."""
    found: Dict[str, Any] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(directory))
            found[rel] = path.read_bytes() if ".hydra" in path.parts else "exists"
    return found


class _FailingStart(_Recorder):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        super().on_job_start(config, **kwargs)
        raise RuntimeError("the callback refuses the job")


def test_a_callback_that_raises_at_job_start_fails_the_job_as_in_hydra(
        hydra_app: Any, version_base_1_3: None) -> None:
    outcomes = []
    for runner in (_hydras, _ours):
        recorder = _FailingStart()
        with pytest.raises(RuntimeError, match="refuses the job"):
            _run(runner, hydra_app, ["lr=0.5"], False, recorder)
        sweep_dir = Path(str(hydra_app[1].hydra.sweep.dir))
        outcomes.append((recorder.calls, _files(sweep_dir)))
    (e_calls, e_files), (g_calls, g_files) = outcomes
    assert len(g_calls) == len(e_calls) == 1
    assert_same_nodes(e_calls[0][1], g_calls[0][1])
    assert_same_nodes(e_calls[0][2], g_calls[0][2])
    assert g_files == e_files


def _run(runner: Any, hydra_app: Any, overrides: List[str], fail: bool,
         recorder: Any = None) -> Dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import HydraContext

    loader, master, cache = hydra_app
    sweep_dir = Path(str(master.hydra.sweep.dir))
    shutil.rmtree(sweep_dir, ignore_errors=True)
    config = cache.job_config(overrides, 7, "id-7")
    recorder = recorder if recorder is not None else _Recorder()
    context = HydraContext(config_loader=loader, callbacks=recorder)  # type: ignore[arg-type]
    task = _task(fail)
    before_cwd = os.getcwd()
    sentinel = OmegaConf.create({"hydra": {"before": 1}})
    HydraConfig.instance().cfg = sentinel  # type: ignore[assignment]
    try:
        ret = runner(context, task, config)
        left = HydraConfig.instance().cfg
        after_cwd = os.getcwd()
    finally:
        os.chdir(before_cwd)
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
    return {
        "ret": ret, "seen": task.seen, "calls": recorder.calls, "config_after": config,  # type: ignore[attr-defined]
        "files": _files(sweep_dir), "hydra_config_left": left is sentinel, "cwd_left": after_cwd == before_cwd,
    }


def _hydras(context: Any, task: Any, config: DictConfig) -> Any:
    from hydra.core.utils import run_job

    return run_job(hydra_context=context, task_function=task, config=config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _ours(context: Any, task: Any, config: DictConfig) -> Any:
    from hydra_plugins.hydra_grid_sweeper._run_job import run_hydra_job

    return run_hydra_job(context, task, config)


def _ours_dir_given(context: Any, task: Any, config: DictConfig) -> Any:
    """As grid_local calls it: the output dir resolved first, under the job's own config."""
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.hydra_grid_sweeper._run_job import (
        run_hydra_job,
        sweep_output_dir,
        view_as_hydra_config,
    )

    previous = HydraConfig.instance().cfg
    view_as_hydra_config(config)
    job_dir = sweep_output_dir(config)
    HydraConfig.instance().cfg = previous
    return run_hydra_job(context, task, config, job_dir)


def assert_same_run(expected: Dict[str, Any], got: Dict[str, Any]) -> None:
    e, g = expected["ret"], got["ret"]
    assert g.status == e.status and g.task_name == e.task_name and g.overrides == e.overrides
    assert g.working_dir == e.working_dir
    if isinstance(e._return_value, BaseException):
        assert type(g._return_value) is type(e._return_value) and str(g._return_value) == str(e._return_value)
    else:
        assert g._return_value == e._return_value
    assert_same_nodes(e.cfg, g.cfg)
    assert_same_nodes(e.hydra_cfg, g.hydra_cfg)
    assert g.hydra_cfg.hydra._get_parent() is g.hydra_cfg  # a config of its own, as Hydra's
    for key in ("cfg", "hydra_view"):
        assert_same_nodes(expected["seen"][key], got["seen"][key])
    for key in ("view_parent_keys", "view_readonly", "resolved", "cwd", "env"):
        assert got["seen"][key] == expected["seen"][key], key
    assert len(got["calls"]) == len(expected["calls"]) == 2
    for e_call, g_call in zip(expected["calls"], got["calls"]):
        assert g_call[0] == e_call[0] and g_call[-1] == e_call[-1]
        assert_same_nodes(e_call[1], g_call[1])
        assert_same_nodes(e_call[2], g_call[2])  # what HydraConfig shows the callback
    assert got["calls"][1][3] is g  # on_job_end gets the JobReturn that is returned
    assert_same_nodes(expected["config_after"], got["config_after"])
    assert got["files"] == expected["files"]
    written = any(name.endswith(".hydra/hydra.yaml") for name in got["files"])
    assert written == (got["config_after"].hydra.output_subdir is not None)
    assert got["hydra_config_left"] and expected["hydra_config_left"]
    assert got["cwd_left"] and expected["cwd_left"]


@pytest.fixture
def version_base_1_3() -> Iterator[None]:
    from hydra import version

    previous = version.getbase()
    version.setbase("1.3")
    try:
        yield
    finally:
        version.VersionBase.instance().version_base = previous


CASES = [
    (["lr=0.5"], False),
    (["model=large", "lr=0.25", "name=big"], False),
    (["+new_key=3", "~nested.a", "items=[1,2,3]"], False),
    (["lr=0.5"], True),  # the task raises: a FAILED JobReturn carrying the exception
    (["hydra.job.chdir=true", "lr=0.5"], False),
    (["hydra.job.chdir=true", "lr=0.5"], True),
    (["hydra.output_subdir=null", "epochs=4"], False),
    (["hydra.sweep.subdir=${hydra.job.override_dirname}", "lr=1", "model=large"], False),
    (["hydra/job_logging=disabled", "lr=2"], False),
    (["hydra.job.name=renamed", "tag=t"], False),
]


@pytest.mark.parametrize("overrides,fail", CASES)
def test_run_hydra_job_matches_hydras_run_job(hydra_app: Any, version_base_1_3: None,
                                              overrides: List[str], fail: bool) -> None:
    expected = _run(_hydras, hydra_app, overrides, fail)
    for ours in (_ours, _ours_dir_given):
        got = _run(ours, hydra_app, overrides, fail)
        assert_same_run(expected, got)
        assert got["ret"].status.name == ("FAILED" if fail else "COMPLETED")


def test_a_hydra_node_that_does_not_pickle_is_copied_as_hydra_copies_it(
        hydra_app: Any, version_base_1_3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra_plugins.hydra_grid_sweeper import _run_job

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise TypeError("cannot pickle this")

    expected = _run(_hydras, hydra_app, ["model=large", "lr=0.5"], False)
    monkeypatch.setattr(_run_job.pickle, "dumps", refuse)
    assert_same_run(expected, _run(_ours, hydra_app, ["model=large", "lr=0.5"], False))


@pytest.mark.parametrize("overrides", [
    ["hydra.sweep.subdir=${no_such_key}"],  # the output dir does not resolve
    ["hydra.sweep.subdir=${hydra:no_such.key}", "lr=0.5"],
    ["hydra.job_logging.root.level=NOPE"],  # logging cannot be configured
])
def test_a_job_that_fails_before_its_task_fails_as_in_hydra(
        hydra_app: Any, version_base_1_3: None, overrides: List[str]) -> None:
    """Same exception, and the same `HydraConfig`, cwd and files left behind."""
    from hydra.core.hydra_config import HydraConfig

    outcomes = []
    for runner in (_hydras, _ours):
        try:
            _run(runner, hydra_app, overrides, False)
            outcomes.append(("ran", None))
        except Exception as error:  # noqa: BLE001 - the error is what is compared
            outcomes.append((f"{type(error).__name__}: {error}", error))
    (expected, _), (got, _) = outcomes
    assert got == expected != "ran"
    left = []
    for runner in (_hydras, _ours):
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
        try:
            _run_bare(runner, hydra_app, overrides)
            raise AssertionError(f"{overrides} ran this time")
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - expected: it failed above too
            pass
        cfg = HydraConfig.instance().cfg
        left.append(None if cfg is None else OmegaConf.to_container(cfg))
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
    assert left[1] == left[0]


def _run_bare(runner: Any, hydra_app: Any, overrides: List[str]) -> Any:
    """The job run without `_run`'s own restoring of HydraConfig (to see what is left)."""
    from hydra._internal.callbacks import Callbacks
    from hydra.types import HydraContext

    loader, master, cache = hydra_app
    config = cache.job_config(overrides, 7, "id-7")
    context = HydraContext(config_loader=loader, callbacks=Callbacks(config))
    cwd = os.getcwd()
    try:
        return runner(context, _task(False), config)
    finally:
        os.chdir(cwd)


@settings(max_examples=int(os.environ.get("RUN_JOB_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(overrides=st.lists(_typed, max_size=3), env=st.sampled_from(["launcher", "job"]))
def test_run_hydra_job_matches_on_drawn_jobs(hydra_app: Any, version_base_1_3: None,
                                             overrides: List[str], env: str) -> None:
    os.environ[ENV_KEY] = env  # env_copy: hydra.job.env_set, set for the task
    try:
        _, master, _ = hydra_app
        try:
            hydra_app[0].load_sweep_config(master, list(overrides))
        except Exception:  # noqa: BLE001 - a job whose config does not compose never runs
            return
        assert_same_run(_run(_hydras, hydra_app, overrides, False), _run(_ours, hydra_app, overrides, False))
    finally:
        os.environ[ENV_KEY] = "launcher"


def test_a_pre_1_2_job_with_chdir_set_runs_ours_the_same(hydra_app: Any) -> None:
    from hydra import version

    previous = version.getbase()
    version.setbase("1.1")
    try:
        for chdir in ("true", "false"):
            overrides = [f"hydra.job.chdir={chdir}", "lr=0.5"]
            assert_same_run(_run(_hydras, hydra_app, overrides, False), _run(_ours, hydra_app, overrides, False))
    finally:
        version.VersionBase.instance().version_base = previous


def test_a_pre_1_2_job_without_chdir_runs_hydras_own(hydra_app: Any) -> None:
    """version_base < 1.2 and `hydra.job.chdir` unset: Hydra warns and changes dir; that is
    left to Hydra's run_job itself."""
    from hydra import version

    previous = version.getbase()
    version.setbase("1.1")
    try:
        with pytest.warns(UserWarning, match="working directory"):
            got = _run(_ours, hydra_app, ["lr=0.5"], False)
    finally:
        version.VersionBase.instance().version_base = previous
    assert got["seen"]["cwd"] == got["ret"].working_dir == got["seen"]["resolved"]["out"]


_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
    st.text(alphabet=" ab\n\t:#-'\"{}[]!&*|>%@`,?~", max_size=300),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300).map(
        lambda t: t.replace("x", "\n")),  # multi-line printable text
)
_keys = st.one_of(_text, st.integers(), st.booleans())
_values = st.recursive(
    st.one_of(_text, st.integers(), st.floats(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=int(os.environ.get("YAML_EXAMPLES", "1500")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(content=st.dictionaries(_keys, _values, max_size=5))
def test_yaml_text_is_omegaconfs(content: Dict[Any, Any]) -> None:
    """Byte for byte, whichever emitter writes it (libyaml for plain ASCII text, else PyYAML's)."""
    from hydra_plugins.hydra_grid_sweeper._run_job import to_yaml

    try:
        cfg = OmegaConf.create(content)
    except Exception:  # noqa: BLE001 - not a config (a key OmegaConf refuses)
        return
    assert to_yaml(cfg) == OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize("text", [
    "python train.py --lr 0.1 --epochs 10 --batch-size 64 --model resnet50 --data /datasets/imagenet\t--seed 1",
    "Question: {q} \nAnswer the question above briefly, citing the passage it came from, in one line.",
    "a long plain line of printable ascii text that goes on past the eighty columns of a yaml line, " * 3,
    "caf\u00e9 " * 30, "", " leading and trailing ", "- dash", "null", "1e3", "'quoted'", '"double"',
    "== Help ==\nCompose your configuration from those groups (group=option)\n\n$APP_CONFIG_GROUPS\n" * 3,
    "\nstarts and ends with a newline, and a long line in between that wraps past eighty columns\n",
])
def test_yaml_text_of_long_and_odd_strings_is_omegaconfs(text: str) -> None:
    from hydra_plugins.hydra_grid_sweeper._run_job import to_yaml

    cfg = OmegaConf.create({"key": text, "items": [text, {"nested": text}], "k " * 30: text})
    assert to_yaml(cfg) == OmegaConf.to_yaml(cfg)


def test_yaml_of_a_hydra_node_takes_libyaml(hydra_app: Any) -> None:
    """The shortcut is taken where it matters: a whole `hydra` node is plain ASCII text."""
    import yaml

    from hydra_plugins.hydra_grid_sweeper._run_job import _emitted_alike, to_yaml

    _, master, cache = hydra_app
    config = cache.job_config(["lr=0.5"], 1, 1)
    container = OmegaConf.to_container(OmegaConf.masked_copy(config, "hydra"), enum_to_str=True)
    assert _emitted_alike(container) == bool(getattr(yaml, "__with_libyaml__", False))
    assert to_yaml(OmegaConf.masked_copy(config, "hydra")) == OmegaConf.to_yaml(OmegaConf.masked_copy(config, "hydra"))
    assert not _emitted_alike({"label": "caf\u00e9"}) and not _emitted_alike({"": 1})
    assert not _emitted_alike(["a\tb"]) and not _emitted_alike({"a": "b \nc"})
    assert _emitted_alike({"help": "== Title ==\nline one\n\nline two\n"})


def test_a_job_prepared_in_the_launcher_runs_with_the_config_its_process_would_make(
        hydra_app: Any, version_base_1_3: None) -> None:
    """grid_local makes a queued job's config in the launcher while it waits (`prepare`); the job's
    process reads `env_copy` in its own environment, as composing there would."""
    from hydra.types import HydraContext

    from hydra_plugins.hydra_grid_sweeper.local_launcher import _HydraJob

    loader, master, cache = hydra_app
    overrides = ["model=large", "lr=0.5"]
    context = HydraContext(config_loader=loader, callbacks=_Recorder())  # type: ignore[arg-type]
    job = _HydraJob(context, _task(False), cache, overrides, 4)
    job.prepare()  # in the launcher: env "launcher"
    assert job.composed is not None and job.composed.hydra.job.env_set[ENV_KEY] == "launcher"
    os.environ[ENV_KEY] = "job"  # the job's own process
    try:
        expected = loader.load_sweep_config(master, overrides)
        ret = job()
    finally:
        os.environ[ENV_KEY] = "launcher"
    task_cfg = copy.deepcopy(expected)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    assert_same_nodes(task_cfg, ret.cfg)
    assert ret.hydra_cfg.hydra.job.env_set[ENV_KEY] == "job" and ret.hydra_cfg.hydra.job.num == 4
    assert ret.return_value == {"lr": 0.5, "num": 4}
    job.forget()
    assert job.composed is None
    composing = _HydraJob(context, _task(False), cache, ["hydra.job.chdir=true", "lr=0.5"], 5)
    composing.prepare()  # a job Hydra must compose is composed in its own process, not here
    assert composing.composed is None
