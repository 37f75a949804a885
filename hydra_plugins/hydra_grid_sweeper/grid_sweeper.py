"""`hydra/sweeper=grid`: Grid flag expressions, grid/random/none strategies, dry run.

A thin shim: the search space, strategies and seeding live in the `grid_sweeper` engine, which is
imported inside methods so that Hydra's plugin scan stays fast.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

DRY_RUN_LINES = 1000


class GridSweepError(CompactHydraException):
    """A sweep definition the grid sweeper cannot run (printed without a traceback)."""


class LazyJobs(Sequence[List[str]]):
    """The jobs of a plan with the given numbers, as override lines computed when asked for."""

    def __init__(self, plan: Any, keys: List[str], numbers: Sequence[int]) -> None:
        self.plan, self.keys, self.numbers = plan, keys, numbers

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, index: Any) -> Any:
        from hydra_plugins.hydra_grid_sweeper._overrides import job_overrides

        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return job_overrides(self.keys, self.plan[self.numbers[index]])

    def subset(self, numbers: Sequence[int]) -> LazyJobs:
        return LazyJobs(self.plan, self.keys, numbers)


class OneJob(Sequence[List[str]]):
    """strategy none: a single job."""

    def __init__(self, overrides: List[str]) -> None:
        self.overrides = overrides

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        return [self.overrides][index]

    def subset(self, numbers: Sequence[int]) -> OneJob:
        assert list(numbers) == [0]
        return self


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
        maximize: bool = False,
        resume: bool = False,
        max_failure_rate: float = 1.0,
        metric: Optional[str] = None,
        report: bool = False,
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
        if seed is not None:
            from grid_sweeper.seeding import check_seed

            try:
                check_seed(seed)
            except ValueError as error:
                raise GridSweepError(f"hydra.sweeper.seed: {error}") from None
        if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
            raise GridSweepError(f"hydra.sweeper.num_trials must be a positive int, got {num_trials!r}")
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.dry_run = dry_run
        self.maximize = maximize
        self.resume = resume
        if not 0 <= max_failure_rate <= 1:
            raise GridSweepError(f"hydra.sweeper.max_failure_rate must lie in 0..1, got {max_failure_rate}")
        self.max_failure_rate = max_failure_rate
        self.metric = metric or None
        self.report = report
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        from hydra_plugins.hydra_grid_sweeper._job_log import TracebackToLog

        if not self.dry_run:  # the task keeps a failure's traceback in the job's log file
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=TracebackToLog(task_function), config=config
            )

    # -- building the job list ----------------------------------------------------------------
    def _flags(self, arguments: List[str]) -> List[Any]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from grid_sweeper.errors import GridExpressionError
        from hydra_plugins.hydra_grid_sweeper._grammar import grid_parsing, multirun_hook_seen
        from hydra_plugins.hydra_grid_sweeper._overrides import merge_params, to_flags

        assert self.hydra_context is not None
        if not multirun_hook_seen():
            import hydra

            raise GridSweepError(
                f"hydra/sweeper=grid cannot run on hydra-core {hydra.__version__}: its multirun "
                "composed the config without passing through the grid sweeper's hook "
                "(ConfigLoaderImpl.load_configuration), so Grid expressions and list sweeps would "
                "be misread. Use hydra-core 1.3.x."
            )
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        with grid_parsing():
            overrides = parser.parse_overrides(merge_params(self.params, arguments))
        try:
            return to_flags(overrides, _group_checker(loader), self.config)
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
        except GridExpressionError as error:
            raise GridSweepError(str(_as_typed(error, flags))) from None
        except ValueError as error:
            raise GridSweepError(str(error)) from None

    # -- the sweep ----------------------------------------------------------------------------
    def sweep(self, arguments: List[str]) -> Any:
        """Run the sweep; expected ends (a bad expression, a refused resume, failed jobs, Ctrl-C)
        print their lines and exit with a code, without Hydra's traceback hint."""
        try:
            return self._sweep(arguments)
        except GridSweepError as error:
            sys.stderr.write(f"{error}\n")
            sys.stderr.flush()
            sys.exit(2)

    def _sweep(self, arguments: List[str]) -> Any:
        from hydra_plugins.hydra_grid_sweeper._overrides import literal_overrides, merge_params

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        saved = self._saved_definition(sweep_dir) if self.resume else None
        if saved is not None and self.seed is None:
            self.seed = saved.get("seed")
        flags = self._flags(arguments)
        if self.strategy == "none":
            jobs: Any = OneJob(literal_overrides(flags))
            seed, size, draws = None, 1, False
        else:
            plan = self._plan(flags)
            seed, size, draws = plan.seed, plan.size, plan.draws
            jobs = LazyJobs(plan, [f.key for f in flags], range(size))
        if self.dry_run:
            self._print_dry_run(jobs, size, seed)
            return []
        definition = {
            "strategy": self.strategy,
            "seed": seed,
            "num_trials": self.num_trials if self.strategy == "random_search" else None,
            "flags": merge_params(self.params, arguments),
            "jobs": size,
            "metric": self.metric,
            "maximize": self.maximize,
        }
        done = self._check_resume(sweep_dir, saved, definition) if self.resume else set()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        from grid_sweeper.definition import save_definition

        save_definition(sweep_dir, definition)
        seed_note = f", seed {seed} (rerun with hydra.sweeper.seed={seed})" if draws else ""
        resumed = f", resuming: {len(done)} already completed" if self.resume else ""
        log.info(f"Grid sweep: {size} job(s), strategy {self.strategy}{seed_note}{resumed}, records in {sweep_dir}")
        numbers: Sequence[int] = range(size) if not done else [n for n in range(size) if n not in done]
        swept = [f.key.lstrip("+~") for f in flags if f.is_sweep]
        return self._run(jobs, numbers, size, len(done), swept, sweep_dir)

    def _saved_definition(self, sweep_dir: Path) -> Dict[str, Any]:
        from grid_sweeper.definition import load_definition

        saved = load_definition(sweep_dir)
        if saved is None:
            raise GridSweepError(
                f"hydra.sweeper.resume=true, but {sweep_dir} holds no grid sweep to resume "
                "(no grid_sweep.yaml): pass the sweep's own dir as hydra.sweep.dir=<dir>"
            )
        if self.seed is not None and saved.get("seed") not in (None, self.seed):
            raise GridSweepError(
                f"resume refused: the sweep in {sweep_dir} used seed {saved.get('seed')}, "
                f"not hydra.sweeper.seed={self.seed}"
            )
        return saved

    def _check_resume(self, sweep_dir: Path, saved: Any, definition: Dict[str, Any]) -> set:
        from grid_sweeper.definition import definition_changes
        from grid_sweeper.records import load_results

        changes = definition_changes(saved, definition)
        if changes:
            raise GridSweepError(
                f"resume refused: the sweep definition differs from the one in {sweep_dir}:\n  "
                + "\n  ".join(changes)
                + "\nRerun the same command (same flags and values), or start a new sweep dir."
            )
        return {n for n, r in load_results(sweep_dir).items() if r.get("status") == "completed"}

    def _run(
        self, jobs: Any, numbers: Sequence[int], size: int, already_done: int, swept: List[str],
        sweep_dir: Path,
    ) -> List[Sequence[JobReturn]]:
        from grid_sweeper.interrupts import exit_code, sigterm_as_interrupt
        from grid_sweeper.progress import Progress
        from grid_sweeper.records import SweepRecorder

        assert self.launcher is not None
        reports_jobs = hasattr(self.launcher, "listener")  # else whole batches: no ETA to show
        recorder = SweepRecorder(sweep_dir, size, swept, self.max_failure_rate,
                                 Progress(size, eta=reports_jobs), already_done=already_done)
        if reports_jobs:
            self.launcher.listener = recorder
        returns: List[Sequence[JobReturn]] = []
        try:
            with sigterm_as_interrupt():
                batch = self.max_batch_size or max(1, len(numbers))
                for start in range(0, len(numbers), batch):
                    if not recorder.accepting_new_jobs():
                        break
                    chunk = numbers[start : start + batch]
                    runnable = self._validate(jobs.subset(chunk), chunk, recorder, first=start == 0)
                    if len(runnable):
                        returns.extend(self._launch(jobs, runnable, recorder))
        except KeyboardInterrupt as stop:
            recorder.close()
            self._report(recorder, sweep_dir, size)
            log.warning("Sweep interrupted: resume it with hydra.sweep.dir=%s hydra.sweeper.resume=true", sweep_dir)
            sys.exit(exit_code(stop))
        finally:
            recorder.close()
            if reports_jobs:
                self.launcher.listener = None
        summary = self._report(recorder, sweep_dir, size)
        if summary["failed"] or recorder.stopped_for_failures:
            self._finish_with_failures(summary, recorder.stopped_for_failures)
        return returns

    def _report(self, recorder: Any, sweep_dir: Path, size: int) -> Dict[str, Any]:
        """results.csv, summary.yaml (report.html), then the summary and their paths in the log."""
        from hydra.core.utils import configure_log

        from grid_sweeper.records import conclude

        assert self.config is not None  # Hydra's logging again: a basic launcher leaves the last job's
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # (and its log file)

        summary, text = conclude(sweep_dir, size, recorder.swept_keys, self.metric, self.maximize, self.report)
        log.info(text)
        return summary

    def _launch(self, jobs: Any, numbers: Sequence[int], recorder: Any) -> List[Sequence[JobReturn]]:
        """Launch jobs by number, in contiguous runs unless the launcher takes explicit numbers."""
        from hydra_plugins.hydra_grid_sweeper._records import event_of

        assert self.launcher is not None
        takes_numbers = bool(getattr(self.launcher, "supports_job_numbers", False))
        runs = [numbers] if takes_numbers else _contiguous_runs(numbers)
        returns = []
        for run in runs:
            if takes_numbers:
                self.launcher.job_numbers = run
            try:
                results = self.launcher.launch(jobs.subset(run), initial_job_idx=run[0])
            finally:
                if takes_numbers:
                    self.launcher.job_numbers = None
            if not hasattr(self.launcher, "listener"):  # a launcher that reports no events
                now = time.time()
                for number, result in zip(run, results):
                    recorder.job_finished(event_of(number, result, now))
            returns.append(results)
        return returns

    def _validate(
        self, batch: Sequence[List[str]], numbers: Sequence[int], recorder: Any, first: bool
    ) -> Sequence[int]:
        """Check every job's config of a batch before launching it; the numbers of those that compose.

        A job whose config fails (`criterion=log_loss` on an Enum field without that member) is
        one failed job, recorded with Hydra's error, while the others run: whatever the launcher,
        it never reaches a launcher that would lose the batch over it. When every job of the first
        batch fails, the sweep's definition is wrong: Hydra's error, before any job starts. From the
        compose cache (~1 ms a job; Hydra composes only the jobs that change composition), which
        our launchers also make the jobs' configs from."""
        from grid_sweeper.events import FAILED, JobEvent
        from hydra_plugins.hydra_grid_sweeper._compose import cache_for

        assert self.hydra_context is not None and self.config is not None
        cache = cache_for(self.hydra_context.config_loader, self.config)
        started = time.perf_counter()
        failed: Dict[int, Tuple[List[str], Exception]] = {}
        for number, overrides in zip(numbers, batch):
            try:
                cache.check(overrides)
            except Exception as error:  # noqa: BLE001 - Hydra's compose errors have many types
                failed[number] = (list(overrides), error)
        if first and failed and len(failed) == len(numbers):
            raise next(iter(failed.values()))[1]
        if len(batch) > 1000:
            log.info(f"Checked the configs of {len(batch)} job(s) in {time.perf_counter() - started:.1f} s")
        for number, (overrides, error) in failed.items():
            cause = f": {error.__cause__}" if error.__cause__ is not None else ""
            text = " ".join(f"{error}{cause}".split()) or type(error).__name__
            log.error(f"Job #{number} not launched: its config does not compose: {text}")
            now = time.time()
            recorder.job_finished(JobEvent(number, overrides, status=FAILED, start=now, end=now,
                                           error=f"config error: {text}"))
        return [n for n in numbers if n not in failed] if failed else numbers

    def _finish_with_failures(self, summary: Dict[str, Any], stopped: bool) -> None:
        assert self.hydra_context is not None and self.config is not None
        self.hydra_context.callbacks.on_multirun_end(
            config=self.config, config_name=self.config.hydra.job.config_name
        )
        numbers = ", ".join(f"#{failure['job']}" for failure in summary["failures"][:20])
        more = " ..." if len(summary["failures"]) > 20 else ""
        lines = [f"{summary['failed']} of {summary['total']} job(s) failed: {numbers}{more} "
                 f"(errors and logs in the summary above)"]
        if stopped:
            lines.append(
                f"Stopped launching new jobs: more than max_failure_rate={self.max_failure_rate} of "
                f"the {summary['total']} jobs failed; {summary['not_run']} job(s) not run"
            )
        log.error("\n".join(lines))  # an expected outcome: no traceback, no HYDRA_FULL_ERROR hint
        sys.exit(1)

    def _print_dry_run(self, jobs: Sequence[List[str]], size: int, seed: Optional[int]) -> None:
        from hydra.core.utils import filter_overrides

        lines = [f"Dry run: {size} job(s), strategy {self.strategy}, seed {seed}"]
        for number in range(min(size, DRY_RUN_LINES)):
            lines.append(f"\t#{number} : {' '.join(filter_overrides(jobs[number]))}")
        if size > DRY_RUN_LINES:
            lines.append(f"\t... and {size - DRY_RUN_LINES} more job(s)")
        lines.append(f"{size} job(s), strategy {self.strategy}, seed {seed}; nothing launched (dry run)")
        print("\n".join(lines), flush=True)


def _as_typed(error: Any, flags: List[Any]) -> Any:
    """The error showing the flag's value as the user typed it."""
    from grid_sweeper.errors import GridExpressionError
    from hydra_plugins.hydra_grid_sweeper._grammar import split_override

    for flag in flags:
        if flag.key.lstrip("+~") == error.flag:
            _, typed = split_override(flag.line)
            return GridExpressionError(error.problem, text=typed or error.text, flag=error.flag, hint=error.hint)
    return error


def _contiguous_runs(numbers: Sequence[int]) -> List[Sequence[int]]:
    """Split job numbers into runs of consecutive numbers (a range stays one run)."""
    if isinstance(numbers, range) and numbers.step == 1:
        return [numbers] if len(numbers) else []
    runs: List[List[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] + 1 == number:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


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
