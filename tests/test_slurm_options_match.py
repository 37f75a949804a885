"""`GridSlurmLauncherConf` (what `hydra.launcher.*` accepts) and the engine's `SlurmOptions` (what
the submitter knows) list the same options with the same defaults, so an option added to one and
not the other fails here, not on a cluster."""
import dataclasses

from grid_sweeper.launch.slurm_options import SlurmOptions
from hydra_plugins.hydra_grid_sweeper._slurm_config import GridSlurmLauncherConf

RENAMED = {"submitit_folder": "folder"}  # the Conf keeps hydra-submitit-launcher's name
HYDRA_ONLY = {"_target_"}
ENGINE_ONLY = {"result_grace_s", "vanished_grace_s"}  # waits tuned for shared filesystems, not options
HYDRA_DEFAULTS = {"folder", "name"}  # `${hydra.sweep.dir}/.submitit/%j`, `${hydra.job.name}`


def defaults(cls: type) -> dict:
    values = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            values[field.name] = field.default_factory()  # type: ignore[misc]
    return values


def test_the_same_options() -> None:
    hydra = {RENAMED.get(k, k) for k in defaults(GridSlurmLauncherConf)} - HYDRA_ONLY
    engine = set(defaults(SlurmOptions)) - ENGINE_ONLY
    assert hydra == engine


def test_the_same_defaults() -> None:
    hydra = {RENAMED.get(k, k): v for k, v in defaults(GridSlurmLauncherConf).items()}
    engine = defaults(SlurmOptions)
    for name in set(engine) - ENGINE_ONLY - HYDRA_DEFAULTS:
        assert hydra[name] == engine[name], name


def test_every_conf_option_is_accepted_by_the_engine() -> None:
    values = {RENAMED.get(k, k): v for k, v in defaults(GridSlurmLauncherConf).items() if k not in HYDRA_ONLY}
    values.update(folder="/tmp/x/%j", name="job")
    assert SlurmOptions.from_mapping(values).partition is None
