"""hydra-core's reusable launcher/sweeper suites, with hydra/sweeper=grid and with the basic sweeper."""

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from pytest import mark

from hydra_plugins.hydra_grid_sweeper.grid_sweeper import GridSweeper


def test_discovered() -> None:
    names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    assert GridSweeper.__name__ in names


@mark.parametrize("launcher_name, overrides", [("basic", ["hydra/sweeper=grid"])])
class TestGridSweeperWithBasicLauncher(LauncherTestSuite):
    """The launcher suite, every sweep going through the grid sweeper."""


@mark.parametrize(
    "launcher_name, overrides",
    [("basic", ["hydra/sweeper=grid", "hydra.sweeper.max_batch_size=2"])],
)
class TestGridSweeperBatches(BatchedSweeperTestSuite):
    """Batches of 2: job numbers and output dirs stay continuous."""


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": ["_self_", {"override hydra/sweeper": "grid"}]}, ["-m", "hydra.sweeper.existing_dir=archive"])],
)
class TestGridSweeperIntegration(IntegrationTestSuite):
    """Apps run as a user runs them, the sweeper chosen in the defaults list. Hydra's suite reruns
    a sweep into the same dir (`hydra.sweep.dir=cli_dir`), which the grid sweeper refuses by default
    (docs/records.md): `existing_dir=archive` is the setting for Hydra's reuse of a sweep dir."""


@mark.parametrize("launcher_name, overrides", [("basic", [])])
class TestBasicSweeperWithPluginInstalled(LauncherTestSuite):
    """With the plugin installed but the basic sweeper selected, Hydra behaves as before."""


@mark.parametrize(
    "launcher_name, overrides", [("basic", ["hydra.sweeper.max_batch_size=2"])]
)
class TestBasicSweeperBatchesWithPluginInstalled(BatchedSweeperTestSuite):
    """Hydra's own batched sweeps, untouched by the plugin."""


@mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m"])])
class TestBasicSweeperIntegrationWithPluginInstalled(IntegrationTestSuite):
    """Hydra's own integration suite, untouched by the plugin."""


