"""The grid sweeper's run: Hydra's side of a `grid_sweeper.session.SweepSession`.

What is Hydra's here: reading the overrides (with Hydra's parser, then into engine flags), the jobs
as override lines, checking their configs before launching, handing them to whichever launcher is
chosen, and ending as Hydra expects (callbacks, exit codes without Hydra's traceback hint).
Everything else — seed, plan, resume, dry run, records, summary — is the engine's session.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from grid_sweeper.errors import GridExpressionError
from grid_sweeper.session import OptionNames, SweepError, SweepSession, SweepSettings, as_typed

log = logging.getLogger("hydra_plugins.hydra_grid_sweeper.grid_sweeper")

HYDRA_NAMES = OptionNames(
    strategy="hydra.sweeper.strategy={!r}",
    seed="hydra.sweeper.seed={}",
    num_trials="hydra.sweeper.num_trials={}",
    resume="pass the sweep's own dir as hydra.sweep.dir={} with hydra.sweeper.resume=true",
    existing_dir="hydra.sweeper.existing_dir={}",
)


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


def run_sweep(sweeper: Any, arguments: List[str]) -> Any:
    """`GridSweeper.sweep`: expected ends (a bad expression, a refused resume, failed jobs, Ctrl-C)
    print their lines and exit with a code, without Hydra's traceback hint."""
    try:
        return SweepRun(sweeper).run(arguments)
    except GridSweepError as error:
        sys.stderr.write(f"{error}\n")
        sys.stderr.flush()
        sys.exit(2)


class SweepRun:
    """One `sweep()` call of a GridSweeper: its session, its jobs, its launcher."""

    def __init__(self, sweeper: Any) -> None:
        self.sweeper = sweeper
        self.config = sweeper.config
        self.hydra_context = sweeper.hydra_context
        self.launcher = sweeper.launcher
        self._cache: Any = None  # the compose cache that checks the jobs' configs

    # -- definition and plan -------------------------------------------------------------------
    def run(self, arguments: List[str]) -> Any:
        from hydra_plugins.hydra_grid_sweeper._overrides import engine_flags, literal_overrides, merge_params

        s = self.sweeper
        if s.max_batch_size is not None and s.max_batch_size < 1:
            raise GridSweepError("hydra.sweeper.max_batch_size must be a positive int or null")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        settings = SweepSettings(strategy=s.strategy, num_trials=s.num_trials, seed=s.seed, metric=s.metric,
                                 maximize=s.maximize, max_failure_rate=s.max_failure_rate, report=s.report,
                                 resume=s.resume, existing_dir=s.existing_dir)
        flags: List[Any] = []
        try:
            session = SweepSession(sweep_dir, settings, HYDRA_NAMES,
                                   identity={"flags": merge_params(s.params, arguments)})
            flags = self._flags(arguments)
            if s.strategy == "none":
                jobs: Any = OneJob(literal_overrides(flags))
            else:
                plan = session.plan(engine_flags(flags))
                jobs = LazyJobs(plan, [f.key for f in flags], range(plan.size))
        except GridExpressionError as error:
            raise GridSweepError(str(as_typed(error, _typed(flags)))) from None
        except (SweepError, ValueError) as error:
            raise GridSweepError(str(error)) from None
        if s.dry_run:
            from hydra.core.utils import filter_overrides

            print(session.dry_run(lambda n: f"\t#{n} : {' '.join(filter_overrides(jobs[n]))}"), flush=True)
            return []
        batch = s.max_batch_size or session.size
        self._check_definition(jobs.subset(range(min(session.size, batch))))  # before the dir is claimed
        try:
            numbers, _ = session.start()
        except SweepError as error:
            raise GridSweepError(str(error)) from None
        try:
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            swept = [f.key.lstrip("+~") for f in flags if f.is_sweep]
            return self._run(session, jobs, numbers, swept)
        finally:
            session.close()

    def _flags(self, arguments: List[str]) -> List[Any]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from hydra_plugins.hydra_grid_sweeper._grammar import grid_parsing, multirun_hook_seen
        from hydra_plugins.hydra_grid_sweeper._overrides import merge_params, to_flags

        if not multirun_hook_seen(self.config):
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
            overrides = parser.parse_overrides(merge_params(self.sweeper.params, arguments))
        return to_flags(overrides, _group_checker(loader), self.config)

    # -- running -------------------------------------------------------------------------------
    def _run(self, session: SweepSession, jobs: Any, numbers: Sequence[int], swept: List[str]) -> Any:
        from grid_sweeper.events import Detached
        from grid_sweeper.interrupts import exit_code, sigterm_as_interrupt

        assert self.launcher is not None
        batch_size = self.sweeper.max_batch_size
        if getattr(self.launcher, "detaches", False) and batch_size and batch_size < len(numbers):
            raise GridSweepError("hydra.launcher.detach=true submits the whole sweep at once, and later "
                                 "batches would need this process: drop hydra.sweeper.max_batch_size")
        recorder = session.recorder(swept, eta=_numbered(self.launcher))  # else whole batches: no ETA
        returns: List[Sequence[JobReturn]] = []
        try:
            with sigterm_as_interrupt():
                batch = self.sweeper.max_batch_size or max(1, len(numbers))
                for start in range(0, len(numbers), batch):
                    if not recorder.accepting_new_jobs():
                        break
                    chunk = numbers[start : start + batch]
                    runnable = self._validate(jobs.subset(chunk), chunk, recorder)
                    if len(runnable):
                        returns.extend(self._launch(jobs, runnable, recorder))
        except Detached as detached:
            recorder.close()
            session.close()
            where = session.sweep_dir
            log.info(f"Detached: {detached}; each job records its own end in {where}\n"
                     f"  where the sweep stands:  gridsweep status {where}\n"
                     f"  follow it to its end:    gridsweep wait {where}  (results.csv, summary.yaml)\n"
                     "  or rerun this command with hydra.sweeper.resume=true: it adopts the jobs")
            return returns
        except KeyboardInterrupt as stop:
            recorder.close()
            self._report(session)
            log.warning("Sweep interrupted: resume it with hydra.sweep.dir=%s hydra.sweeper.resume=true",
                        session.sweep_dir)
            sys.exit(exit_code(stop))
        finally:
            recorder.close()
        summary = self._report(session)
        if summary["failed"] or summary["not_run"] or recorder.stopped_for_failures:
            self._finish_with_failures(summary, recorder.stopped_for_failures)
        return returns

    def _report(self, session: SweepSession) -> Dict[str, Any]:
        """results.csv, summary.yaml (report.html), then the summary and their paths in the log."""
        from hydra.core.utils import configure_log

        # Hydra's logging again: a basic launcher leaves the last job's (and its log file)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        summary, text = session.finish()
        log.info(text)
        return summary

    def _launch(self, jobs: Any, numbers: Sequence[int], recorder: Any) -> List[Sequence[JobReturn]]:
        """Our launchers take the numbers and the recorder (`NumberedLauncher`); any other launcher
        gets runs of consecutive numbers through Hydra's `launch()`, recorded as each returns."""
        from hydra_plugins.hydra_grid_sweeper._records import event_of

        if _numbered(self.launcher):
            return [self.launcher.launch_jobs(jobs.subset(numbers), numbers, recorder)]
        returns = []
        for run in _contiguous_runs(numbers):
            results = self.launcher.launch(jobs.subset(run), initial_job_idx=run[0])
            now = time.time()
            for number, result in zip(run, results):
                recorder.job_finished(event_of(number, result, now))
            returns.append(results)
        return returns

    def _check_definition(self, first_batch: Sequence[List[str]]) -> None:
        """Hydra's error, before the sweep claims its dir, when no job of the first batch composes
        (`criterion=[log_loss,mse]` on an Enum without them): the definition itself is wrong.
        Stops at the first job that composes, so it costs one check in a good sweep."""
        first_error: Any = None
        for overrides in first_batch:
            error = self._config_error(overrides)
            if error is None:
                return
            first_error = first_error or error
        if first_error is not None:
            raise first_error

    def _config_error(self, overrides: Sequence[str]) -> Any:
        """What composing this job's config raises (from the compose cache), or None."""
        from hydra_plugins.hydra_grid_sweeper._compose import cache_for

        if self._cache is None:
            self._cache = cache_for(self.hydra_context.config_loader, self.config)
        try:
            self._cache.check(overrides)
        except Exception as error:  # noqa: BLE001 - Hydra's compose errors have many types
            return error
        return None

    def _validate(self, batch: Sequence[List[str]], numbers: Sequence[int], recorder: Any) -> Sequence[int]:
        """Check every job's config of a batch before launching it; the numbers of those that compose.

        A job whose config fails (`criterion=log_loss` on an Enum field without that member) is
        one failed job, recorded with Hydra's error, while the others run: whatever the launcher,
        it never reaches a launcher that would lose the batch over it (`_check_definition` has
        already refused a sweep none of whose first batch composes). From the compose cache
        (~1 ms a job; Hydra composes only the jobs that change composition), which our launchers
        also make the jobs' configs from."""
        from grid_sweeper.events import FAILED, JobEvent

        started = time.perf_counter()
        failed: Dict[int, Tuple[List[str], Exception]] = {}
        for number, overrides in zip(numbers, batch):
            error = self._config_error(overrides)
            if error is not None:
                failed[number] = (list(overrides), error)
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
        self.hydra_context.callbacks.on_multirun_end(
            config=self.config, config_name=self.config.hydra.job.config_name
        )
        numbers = ", ".join(f"#{failure['job']}" for failure in summary["failures"][:20])
        more = " ..." if len(summary["failures"]) > 20 else ""
        lines = []
        if summary["failed"]:
            lines.append(f"{summary['failed']} of {summary['total']} job(s) failed: {numbers}{more} "
                         f"(errors and logs in the summary above)")
        if summary["not_run"] and not stopped:
            lines.append(f"{summary['not_run']} of {summary['total']} job(s) have no record: resume with "
                         f"hydra.sweep.dir={self.config.hydra.sweep.dir} hydra.sweeper.resume=true")
        if stopped:
            lines.append(
                f"Stopped launching new jobs: more than max_failure_rate={self.sweeper.max_failure_rate} of "
                f"the {summary['total']} jobs failed; {summary['not_run']} job(s) not run"
            )
        log.error("\n".join(lines))  # an expected outcome: no traceback, no HYDRA_FULL_ERROR hint
        sys.exit(1)


def _numbered(launcher: Any) -> bool:
    from hydra_plugins.hydra_grid_sweeper._launcher_glue import NumberedLauncher

    return isinstance(launcher, NumberedLauncher)


def _typed(flags: List[Any]) -> Dict[str, str]:
    """Flag name -> its value as typed, for errors."""
    from grid_sweeper.flag_text import name_and_value

    return dict(name_and_value(f.line) for f in flags)


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
