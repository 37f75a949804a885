"""Hydra's `run_job` for one job of a sweep, without the copies nobody sees.

Hydra's `run_job` (hydra-core 1.3) is most of what a forked job spends before its task runs
(~18 of ~33 ms): it installs the `HydraConfig` twice (each time a deep copy of the whole `hydra`
node), deep-copies the job's config, `hydra` included, only to delete `hydra` from the copy it
hands the task, and writes `.hydra/*.yaml` with PyYAML's pure-Python emitter. `run_hydra_job`
takes the same steps in the same order and gives the same results: the task's config, what
`HydraConfig` and `${hydra:...}` answer, the callbacks' arguments, the working dir, logging,
`.hydra/*.yaml` byte for byte and the `JobReturn`. It copies `hydra` twice instead of five
times, by pickle rather than node by node, copies the task's config without copying `hydra`, and
emits YAML with libyaml where PyYAML has it and the text is of a kind both emitters write alike.

Jobs it does not cover run Hydra's own `run_job`: another Hydra than 1.3, a config whose
`version_base` predates 1.2 with `hydra.job.chdir` unset (Hydra then warns and changes dir).
tests/test_run_job.py compares the two on hydra-core 1.3.2 and 1.3.8.
"""
from __future__ import annotations

import copy
import os
import pickle
from functools import cache
from pathlib import Path
from typing import Any, Optional, Tuple

from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write

JOB_DIR_KEY = "hydra.sweep.dir"
JOB_SUBDIR_KEY = "hydra.sweep.subdir"


def view_as_hydra_config(config: DictConfig) -> None:
    """Let `HydraConfig.get()` and `${hydra:...}` answer from `config` itself.

    Hydra's `set_config` hands them a copy of `config.hydra` instead (so that the task cannot
    reach the rest through it); a copy costs a few ms, and for resolving the job's own output
    dir the node itself answers the same. The caller restores or replaces it.
    """
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = config  # type: ignore[assignment]


def sweep_output_dir(config: DictConfig) -> str:
    """`hydra.sweep.dir` joined with `hydra.sweep.subdir`, resolved as `run_job` resolves them
    (while `HydraConfig` shows this job's config), neither made absolute."""
    directory = str(OmegaConf.select(config, JOB_DIR_KEY))
    return os.path.join(directory, str(OmegaConf.select(config, JOB_SUBDIR_KEY)))


def prepare() -> None:
    """Load what `run_hydra_job` uses, once, in a launcher about to fork its jobs."""
    _hydra_1_3()
    _c_dumper()


def run_hydra_job(hydra_context: Any, task_function: Any, config: DictConfig,
                  output_dir: Optional[str] = None) -> Any:
    """Run one sweep job in this process as Hydra's `run_job(..., "hydra.sweep.dir",
    "hydra.sweep.subdir")` would, on `config`, which this job owns (it is changed in place, as
    Hydra changes it). `output_dir`: the job's dir as `sweep_output_dir` gives it, when the
    caller resolved it already."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override

    if hydra_context is None or not _covered(config):
        return _hydras_run_job(hydra_context, task_function, config)
    callbacks = hydra_context.callbacks
    start_dir = os.getcwd()
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    OmegaConf.set_readonly(config.hydra, True)
    _check_hydra_node(config)
    view_as_hydra_config(config)
    try:
        if output_dir is None:
            output_dir = sweep_output_dir(config)
        with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
            config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    except BaseException:
        hydra_config.set_config(config)  # what Hydra leaves installed when this fails
        raise
    moved = False
    try:
        seen, hydra_cfg = _hydra_copies(config)
        seen.hydra._set_parent(config)  # as `set_config` links it: `hydra` may interpolate the rest
        hydra_config.cfg = seen  # type: ignore[assignment]
        ret = JobReturn()
        task_cfg = _copy_without_hydra(config)
        ret.cfg = task_cfg
        ret.hydra_cfg = hydra_cfg
        ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        if hydra_cfg.hydra.job.chdir:
            os.chdir(output_dir)
            moved = True
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            saved = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            saved.mkdir(parents=True, exist_ok=True)
            for cfg, name in ((task_cfg, "config.yaml"), (hydra_cfg, "hydra.yaml"),
                              (config.hydra.overrides.task, "overrides.yaml")):
                (saved / name).write_text(to_yaml(cfg), encoding="utf-8")
        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as error:  # the JobReturn carries it, as in Hydra
                ret.return_value = error
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_log_handlers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        hydra_config.cfg = previous
        if moved:
            os.chdir(start_dir)


def _hydras_run_job(hydra_context: Any, task_function: Any, config: DictConfig) -> Any:
    from hydra.core.utils import run_job

    return run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                   job_dir_key=JOB_DIR_KEY, job_subdir_key=JOB_SUBDIR_KEY)


def _covered(config: DictConfig) -> bool:
    """Whether this Hydra and this job take the steps `run_hydra_job` takes."""
    if not _hydra_1_3():
        return False
    if OmegaConf.select(config, "hydra.job.chdir") is not None:
        return True
    from hydra import version

    return bool(version.base_at_least("1.2"))  # else Hydra warns, then changes dir


@cache
def _hydra_1_3() -> bool:
    import hydra

    return str(hydra.__version__).split(".")[:2] == ["1", "3"]


def _check_hydra_node(config: DictConfig) -> None:
    """Hydra's `set_config` refuses a config whose `hydra` is no `HydraConf` (an assertion)."""
    from hydra.conf import HydraConf

    node_type = OmegaConf.get_type(config, "hydra")
    assert node_type is not None and issubclass(node_type, HydraConf)


def _hydra_copies(config: DictConfig) -> Tuple[DictConfig, DictConfig]:
    """Two configs holding only a copy of `config.hydra`, each what Hydra's `set_config` makes
    with `OmegaConf.masked_copy(config, "hydra")`: one for `HydraConfig`, one for the JobReturn.

    The node is pickled once and unpickled twice (~1 ms for both, where OmegaConf's deep copy
    takes ~3 ms for each); a node that does not pickle is copied as Hydra copies it.
    """
    node = config._get_node("hydra")
    parent = node._get_parent()
    node._set_parent(None)  # pickle `hydra` alone, not the config around it
    try:
        data: Optional[bytes] = pickle.dumps(node, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an odd value in it: copied the slow way
        data = None
    finally:
        node._set_parent(parent)
    if data is None:
        seen = OmegaConf.masked_copy(config, "hydra")
        return seen, copy.deepcopy(seen)
    return _holding(pickle.loads(data)), _holding(pickle.loads(data))


def _holding(hydra_node: Any) -> DictConfig:
    """A new config with `hydra_node` as its `hydra`, taken as it is (not copied again)."""
    holder = DictConfig({})
    with flag_override(holder, "no_deepcopy_set_nodes", True):
        holder["hydra"] = hydra_node
    return holder


def _copy_without_hydra(config: DictConfig) -> DictConfig:
    """`deepcopy(config)` with `hydra` then deleted, without copying `hydra` first: the copy
    memo maps the `hydra` node to an empty stand-in, which is what gets deleted."""
    hydra_node = config._get_node("hydra")
    copied = copy.deepcopy(config, memo={id(hydra_node): DictConfig({})})
    with read_write(copied), open_dict(copied):
        del copied["hydra"]
    return copied


def to_yaml(cfg: Any) -> str:
    """`OmegaConf.to_yaml(cfg)`, the same text, emitted by libyaml where PyYAML has it and the
    text is one it writes the same way (~3x faster on a `hydra` node)."""
    import yaml

    dumper = _c_dumper()
    if dumper is None:
        return OmegaConf.to_yaml(cfg)
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    if not _emitted_alike(container):
        return OmegaConf.to_yaml(cfg)
    try:
        return yaml.dump(container, default_flow_style=False, allow_unicode=True,
                         sort_keys=False, Dumper=dumper)
    except Exception:  # noqa: BLE001 - PyYAML's own emitter then says what is wrong
        return OmegaConf.to_yaml(cfg)


def _emitted_alike(value: Any) -> bool:
    """Whether libyaml writes `value` byte for byte as PyYAML's own emitter does: checked (tests)
    for numbers, keys of printable ASCII, and text of printable ASCII and newlines where no
    space touches a newline (Hydra's help templates). Other text can differ: control characters
    and non-ASCII in quoting and escapes, an empty key in its form, tabs and spaces beside
    newlines in how a long double-quoted line is folded; it takes PyYAML's emitter."""
    if isinstance(value, str):
        return (value.isascii() and value.replace("\n", "").isprintable()
                and " \n" not in value and "\n " not in value)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not (key and key.isascii() and key.isprintable()):
                return False
            if not _emitted_alike(item):
                return False
        return True
    if isinstance(value, list):
        return all(_emitted_alike(item) for item in value)
    return True


@cache
def _c_dumper() -> Optional[type]:
    """OmegaConf's YAML dumper (its quoting of strings that read as other types) on libyaml's
    emitter; None without libyaml."""
    import yaml

    try:
        from omegaconf._utils import get_omega_conf_dumper  # OmegaConf's own, for its quoting

        omegaconf_dumper = get_omega_conf_dumper()
    except (ImportError, AttributeError):  # another OmegaConf: its to_yaml does it all
        return None
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    dumper = type("OmegaConfCDumper", (yaml.CDumper,), {})
    for kind, represent in omegaconf_dumper.yaml_representers.items():
        dumper.add_representer(kind, represent)
    for kind, represent in omegaconf_dumper.yaml_multi_representers.items():
        dumper.add_multi_representer(kind, represent)
    return dumper


def _flush_log_handlers() -> None:
    """Flush every logging handler, as Hydra does after the task (logging has no API for it)."""
    import logging

    for handler_ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = handler_ref()
        try:
            if handler is not None:
                handler.flush()
        except Exception:  # noqa: BLE001 - a handler that cannot flush is skipped
            pass
