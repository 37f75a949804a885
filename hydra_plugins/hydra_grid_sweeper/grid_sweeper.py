"""`hydra/sweeper=grid`: Grid flag expressions, grid/random/none strategies, dry run.

A thin shim: the search space, strategies and seeding live in the `grid_sweeper` engine, which is
imported inside methods so that Hydra's plugin scan stays fast.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

DRY_RUN_LINES = 1000


class GridSweepError(CompactHydraException):
    """A sweep definition the grid sweeper cannot run (printed without a traceback)."""


class GridSweepFailed(CompactHydraException):
    """Some jobs of the sweep failed (the others' results are kept)."""


class LazyJobs(Sequence[List[str]]):
    """Jobs `start..stop` of a plan as override lines, computed when asked for."""

    def __init__(self, plan: Any, keys: List[str], start: int, stop: int) -> None:
        self.plan, self.keys, self.start, self.stop = plan, keys, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: Any) -> Any:
        from hydra_plugins.hydra_grid_sweeper._overrides import job_overrides

        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return job_overrides(self.keys, self.plan[self.start + index])


class OneJob(Sequence[List[str]]):
    """strategy none: a single job."""

    def __init__(self, overrides: List[str]) -> None:
        self.overrides = overrides
        self.size = 1

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        return [self.overrides][index]


class GridSweeper(Sweeper):
    """Sweeps Grid flag expressions and Hydra's own sweep syntax."""

    def __init__(
        self,
        strategy: str = "grid_search",
        num_trials: int = 10,
        seed: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, Any]] = None,
        dry_run: bool = False,
    ) -> None:
        from grid_sweeper.strategies import STRATEGIES

        if strategy not in STRATEGIES:
            raise GridSweepError(
                f"hydra.sweeper.strategy={strategy!r} is not a strategy; use one of {', '.join(STRATEGIES)}"
            )
        if max_batch_size is not None and max_batch_size < 1:
            raise GridSweepError("hydra.sweeper.max_batch_size must be a positive int or null")
        self.strategy = strategy
        self.num_trials = num_trials
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.dry_run = dry_run
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        if not self.dry_run:
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task_function, config=config
            )

    # -- building the job list ----------------------------------------------------------------
    def _flags(self, arguments: List[str]) -> List[Any]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from grid_sweeper.errors import GridExpressionError
        from hydra_plugins.hydra_grid_sweeper._overrides import merge_params, to_flags

        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        overrides = parser.parse_overrides(merge_params(self.params, arguments))
        try:
            return to_flags(overrides, _group_checker(loader))
        except GridExpressionError as error:
            raise GridSweepError(str(error)) from None

    def _plan(self, flags: List[Any]) -> Any:
        from grid_sweeper.errors import GridExpressionError
        from grid_sweeper.seeding import new_seed
        from grid_sweeper.space import SearchSpace
        from grid_sweeper.strategies import grid_search, random_search
        from hydra_plugins.hydra_grid_sweeper._overrides import engine_flags

        seed = self.seed if self.seed is not None else new_seed()
        try:
            space = SearchSpace(engine_flags(flags), seed)
            if self.strategy == "random_search":
                return random_search(space, self.num_trials)
            return grid_search(space)
        except (GridExpressionError, ValueError) as error:
            raise GridSweepError(str(error)) from None

    # -- the sweep ----------------------------------------------------------------------------
    def sweep(self, arguments: List[str]) -> Any:
        from hydra_plugins.hydra_grid_sweeper._overrides import literal_overrides

        assert self.config is not None
        flags = self._flags(arguments)
        if self.strategy == "none":
            jobs: Sequence[List[str]] = OneJob(literal_overrides(flags))
            seed = None
        else:
            plan = self._plan(flags)
            seed = plan.seed
            jobs = LazyJobs(plan, [f.key for f in flags], 0, plan.size)
        size = getattr(jobs, "size", None) or len(jobs)
        if self.dry_run:
            self._print_dry_run(jobs, size, seed)
            return []
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self._save_definition(sweep_dir, arguments, size, seed)
        seed_note = f", seed {seed} (rerun with hydra.sweeper.seed={seed})" if seed is not None else ""
        log.info(f"Grid sweep: {size} job(s), strategy {self.strategy}{seed_note}")
        return self._launch_all(jobs, size)

    def _launch_all(self, jobs: Sequence[List[str]], size: int) -> List[Sequence[JobReturn]]:
        assert self.launcher is not None and self.config is not None
        batch = self.max_batch_size or size
        returns: List[Sequence[JobReturn]] = []
        failures: List[str] = []
        for start in range(0, size, batch):
            chunk = _slice(jobs, start, min(size, start + batch))
            if start == 0:
                self._validate(chunk[0])
            results = self.launcher.launch(chunk, initial_job_idx=start)
            for offset, result in enumerate(results):
                if result.status == JobStatus.FAILED:
                    failures.append(_failure_line(start + offset, result))
            returns.append(results)
        if failures:
            self._finish_with_failures(failures, size)
        return returns

    def _validate(self, overrides: List[str]) -> None:
        """Compose the first job's config before launching: one cheap check, not one per job."""
        assert self.hydra_context is not None and self.config is not None
        self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def _finish_with_failures(self, failures: List[str], size: int) -> None:
        assert self.hydra_context is not None and self.config is not None
        self.hydra_context.callbacks.on_multirun_end(
            config=self.config, config_name=self.config.hydra.job.config_name
        )
        listing = "\n".join(failures)
        raise GridSweepFailed(f"{len(failures)} of {size} job(s) failed:\n{listing}")

    def _save_definition(self, sweep_dir: Path, arguments: List[str], size: int, seed: Optional[int]) -> None:
        definition = {
            "strategy": self.strategy,
            "seed": seed,
            "num_trials": self.num_trials if self.strategy == "random_search" else None,
            "params": self.params,
            "arguments": list(arguments),
            "jobs": size,
        }
        OmegaConf.save(OmegaConf.create(definition), sweep_dir / "grid_sweep.yaml")

    def _print_dry_run(self, jobs: Sequence[List[str]], size: int, seed: Optional[int]) -> None:
        from hydra.core.utils import filter_overrides

        lines = [f"Dry run: {size} job(s), strategy {self.strategy}, seed {seed}"]
        for number in range(min(size, DRY_RUN_LINES)):
            lines.append(f"\t#{number} : {' '.join(filter_overrides(jobs[number]))}")
        if size > DRY_RUN_LINES:
            lines.append(f"\t... and {size - DRY_RUN_LINES} more job(s)")
        lines.append(f"{size} job(s), strategy {self.strategy}, seed {seed}; nothing launched (dry run)")
        print("\n".join(lines), flush=True)


def _slice(jobs: Sequence[List[str]], start: int, stop: int) -> Sequence[List[str]]:
    if isinstance(jobs, LazyJobs):
        return LazyJobs(jobs.plan, jobs.keys, start, stop)
    return list(jobs)[start:stop]


def _failure_line(number: int, result: JobReturn) -> str:
    error = result._return_value
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"  #{number} {' '.join(result.overrides or [])}: {first}"


def _group_checker(loader: Any) -> Any:
    repository = getattr(loader, "repository", None)

    def group_exists(key: str) -> bool:
        if repository is None:
            return False
        try:
            return bool(repository.group_exists(key))
        except Exception:
            return False

    return group_exists
