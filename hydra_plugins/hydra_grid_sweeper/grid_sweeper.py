"""`hydra/sweeper=grid`: Grid flag expressions and Hydra's sweeps; grid, random or one job.

Hydra's plugin scan executes this module in every Hydra app of the environment, so it holds only
the plugin class. The run is `_sweep.py` (Hydra's side) driving `grid_sweeper.session` (the engine's
sweep loop), both imported when a sweep starts.
"""
from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GridSweeper(Sweeper):
    """Sweeps Grid flag expressions and Hydra's own sweep syntax (settings: docs/sweeper.md)."""

    def __init__(
        self,
        strategy: str = "grid_search",
        num_trials: int = 10,
        seed: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, Any]] = None,
        dry_run: bool = False,
        maximize: bool = False,
        resume: bool = False,
        max_failure_rate: float = 1.0,
        metric: Optional[str] = None,
        report: bool = False,
        existing_dir: str = "refuse",
    ) -> None:
        self.strategy = strategy
        self.num_trials = num_trials
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.dry_run = dry_run
        self.maximize = maximize
        self.resume = resume
        self.max_failure_rate = max_failure_rate
        self.metric = metric or None
        self.report = report
        self.existing_dir = existing_dir
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from hydra_plugins.hydra_grid_sweeper._job_record import RecordedTask

        self.config = config
        self.hydra_context = hydra_context
        if not self.dry_run:  # each job records its own end in the sweep dir
            task = RecordedTask(task_function, str(config.hydra.sweep.dir))
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task, config=config
            )

    def sweep(self, arguments: List[str]) -> Any:
        from hydra_plugins.hydra_grid_sweeper._sweep import run_sweep

        return run_sweep(self, arguments)
