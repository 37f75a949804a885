"""One sweep, from its definition to its summary: the loop both front ends drive.

`hydra/sweeper=grid` and `gridsweep` differ only in how flags are typed and how jobs are launched.
Everything else is here, once: the seed (given, saved by the sweep being resumed, or new), the
plan (grid, random or one literal job), the dry run's frame, resume (the saved definition, the
refusal of a changed one, the completed jobs to skip), the definition file, the start line, the
recorder, and the end (results.csv, summary.yaml, report.html, the summary text). A front end
translates its options into `SweepSettings` and its flags into engine `Flag`s, names its options
for messages (`OptionNames`), and turns `SweepError` into its own error.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from grid_sweeper.errors import GridExpressionError

log = logging.getLogger(__name__)

DRY_RUN_LINES = 1000


class SweepError(Exception):
    """A sweep that cannot start: a bad setting, a refused resume, a bad expression."""


@dataclass(frozen=True)
class OptionNames:
    """How a front end names its options in messages, as format strings of the value."""

    strategy: str = "strategy={!r}"
    seed: str = "seed={}"
    num_trials: str = "num_trials={}"
    resume: str = "resume with sweep dir {}"
    existing_dir: str = "existing_dir={}"


@dataclass
class SweepSettings:
    """What a sweep is asked for, whatever the front end."""

    strategy: str = "grid_search"
    num_trials: int = 10
    seed: Optional[int] = None
    metric: Optional[str] = None
    maximize: bool = False
    max_failure_rate: float = 1.0
    report: bool = False
    resume: bool = False
    existing_dir: str = "refuse"  # a dir holding an earlier sweep, without resume: refuse | archive


EXISTING_DIR = ("refuse", "archive")


@dataclass
class SweepSession:
    """A sweep into `sweep_dir`: build with the settings and flags, then `plan()`, `start()`,
    run the jobs with `recorder()`, and `finish()`."""

    sweep_dir: Path
    settings: SweepSettings
    names: OptionNames = field(default_factory=OptionNames)
    #: what identifies the sweep for resume, beside strategy, seed and size (flags as typed, command)
    identity: Dict[str, Any] = field(default_factory=dict)
    plan_: Any = None  # the SweepPlan once `plan()` ran; None for strategy none
    saved: Optional[Dict[str, Any]] = None  # the definition of the sweep being resumed
    already_done: int = 0
    swept: List[str] = field(default_factory=list)
    logger: logging.Logger = log  # where the start line goes (gridsweep: its own logger)
    lock: Any = None  # the live sweep's hold on its dir, from start() to finish()

    def __post_init__(self) -> None:
        from grid_sweeper.seeding import check_seed
        from grid_sweeper.strategies import STRATEGIES

        self.sweep_dir = Path(self.sweep_dir)
        s = self.settings
        if s.strategy not in STRATEGIES:
            raise SweepError(f"{self.names.strategy.format(s.strategy)} is not a strategy; "
                             f"use one of {', '.join(STRATEGIES)}")
        if isinstance(s.num_trials, bool) or not isinstance(s.num_trials, int) or s.num_trials < 1:
            raise SweepError(f"{self.names.num_trials.format(s.num_trials)}: num_trials must be a positive int")
        if s.existing_dir not in EXISTING_DIR:
            raise SweepError(f"{self.names.existing_dir.format(repr(s.existing_dir))}: use one of "
                             f"{', '.join(EXISTING_DIR)}")
        if not 0 <= s.max_failure_rate <= 1:
            raise SweepError(f"max_failure_rate must lie in 0..1, got {s.max_failure_rate}")
        if s.seed is not None:
            try:
                check_seed(s.seed)
            except ValueError as error:
                raise SweepError(f"{self.names.seed.format(s.seed)}: {error}") from None
        if s.resume:
            self.saved = self._saved_definition()

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, flags: Sequence[Any]) -> Any:
        """The job list over engine `Flag`s: a lazy SweepPlan, or None for strategy none."""
        from grid_sweeper.seeding import new_seed
        from grid_sweeper.space import SearchSpace
        from grid_sweeper.strategies import grid_search, random_search

        if self.settings.strategy == "none":
            return None
        seed = self.settings.seed
        if seed is None and self.saved is not None:
            seed = self.saved.get("seed")
        seed = new_seed() if seed is None else seed
        space = SearchSpace(list(flags), seed)  # GridExpressionError, ValueError: the caller's to show
        if self.settings.strategy == "random_search":
            try:
                self.plan_ = random_search(space, self.settings.num_trials)
            except ValueError as error:
                raise SweepError(f"{self.names.num_trials.format(self.settings.num_trials)}: {error}") from None
        else:
            self.plan_ = grid_search(space)
        return self.plan_

    @property
    def size(self) -> int:
        return 1 if self.plan_ is None else self.plan_.size

    @property
    def seed(self) -> Optional[int]:
        return None if self.plan_ is None else self.plan_.seed

    @property
    def draws(self) -> bool:
        """Whether anything was drawn at random: only then is the seed worth printing."""
        return self.plan_ is not None and self.plan_.draws

    def dry_run(self, describe: Callable[[int], str], notes: Sequence[str] = (), verb: str = "launched") -> str:
        """The dry run's text: every job (the first 1000) as the front end describes it."""
        head = f"{self.size} job(s), strategy {self.settings.strategy}, seed {self.seed}"
        lines = [f"Dry run: {head}"]
        lines += [describe(number) for number in range(min(self.size, DRY_RUN_LINES))]
        if self.size > DRY_RUN_LINES:
            lines.append(f"... and {self.size - DRY_RUN_LINES} more job(s)")
        lines += list(notes)
        lines.append(f"{head}; nothing {verb} (dry run)")
        return "\n".join(lines)

    # -- start: definition and resume ----------------------------------------------------------
    def definition(self) -> Dict[str, Any]:
        s = self.settings
        return {
            **{k: v for k, v in self.identity.items() if k == "command"},
            "strategy": s.strategy,
            "seed": self.seed,
            "num_trials": s.num_trials if s.strategy == "random_search" else None,
            **{k: v for k, v in self.identity.items() if k != "command"},
            "jobs": self.size,
            "metric": s.metric,
            "maximize": s.maximize,
        }

    def start(self) -> Tuple[Sequence[int], int]:
        """Hold the sweep dir, save the definition (after checking it against a resumed one); the
        job numbers to run and how many are already completed. Logs the start line."""
        from grid_sweeper.sweep_dir import SweepDirInUse, SweepDirLock

        try:
            self.lock = SweepDirLock(self.sweep_dir).acquire()
        except SweepDirInUse as error:
            raise SweepError(str(error)) from None
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> Tuple[Sequence[int], int]:
        from grid_sweeper.definition import DEFINITION_FILE, definition_changes, save_definition
        from grid_sweeper.job_records import STATE_DIR
        from grid_sweeper.records import RESULTS_JSONL, load_results, repair_results

        definition = self.definition()
        done: Set[int] = set()
        earlier = [name for name in (DEFINITION_FILE, RESULTS_JSONL, STATE_DIR) if (self.sweep_dir / name).exists()]
        if self.saved is None and earlier:
            if self.settings.existing_dir != "archive":
                raise SweepError(
                    f"{self.sweep_dir} already holds a grid sweep (its {' and '.join(earlier)}): "
                    f"{self.names.resume.format(self.sweep_dir)} to resume it, or choose another sweep dir "
                    f"({self.names.existing_dir.format('archive')} starts over there, keeping the earlier "
                    "records aside); two sweeps' records are never mixed")
            from grid_sweeper.attach import still_on_slurm
            from grid_sweeper.sweep_dir import archive_records

            running = still_on_slurm(self.sweep_dir)
            if running:
                raise SweepError(
                    f"{self.sweep_dir} holds an earlier sweep whose Slurm jobs still run ({running}): their "
                    f"records would land in the new sweep; collect them first (gridsweep wait {self.sweep_dir}) "
                    f"or cancel them, or choose another sweep dir")
            moved = archive_records(self.sweep_dir)
            self.logger.warning(f"{self.sweep_dir} held an earlier sweep: its records moved to {moved}")
        if self.saved is not None:
            changes = definition_changes(self.saved, definition)
            if changes:
                raise SweepError(
                    f"resume refused: the sweep definition differs from the one in {self.sweep_dir}:\n  "
                    + "\n  ".join(changes)
                    + "\nRerun the same command (same flags and values), or start a new sweep dir.")
        bad, restored = repair_results(self.sweep_dir)
        if bad:
            self.logger.warning(
                f"{RESULTS_JSONL} line(s) {', '.join(map(str, bad))} held no record (torn by a crash "
                f"mid-write?): dropped; {restored} record(s) restored from the jobs' own records; a job "
                "without a record runs again")
        if self.saved is not None:
            records = load_results(self.sweep_dir)
            done = {n for n, r in records.items() if r.get("status") == "completed"}
            self._rerun(sorted(n for n in records if n not in done))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        save_definition(self.sweep_dir, definition)
        seed_note = f", seed {self.seed} (rerun with {self.names.seed.format(self.seed)})" if self.draws else ""
        resumed = f", resuming: {len(done)} already completed" if self.settings.resume else ""
        self.logger.info(f"Grid sweep: {self.size} job(s), strategy {self.settings.strategy}{seed_note}{resumed}, "
                 f"records in {self.sweep_dir}")
        numbers: Sequence[int] = range(self.size)
        if done:
            numbers = [n for n in numbers if n not in done]
        self.already_done = len(done)
        return numbers, len(done)

    def _rerun(self, numbers: Sequence[int]) -> None:
        """Jobs that ended badly run again: their records, Slurm submissions and pack claims are
        over, so that the new run's can stand (the old lines stay in results.jsonl as history)."""
        from grid_sweeper.job_records import forget
        from grid_sweeper.launch.pack import release
        from grid_sweeper.ledger import void

        forget(self.sweep_dir, numbers)
        void(self.sweep_dir, numbers)
        for number in numbers:
            release(str(self.sweep_dir), number)

    def _saved_definition(self) -> Dict[str, Any]:
        from grid_sweeper.definition import load_definition

        saved = load_definition(self.sweep_dir)
        if saved is None:
            raise SweepError(f"resume: {self.sweep_dir} holds no grid sweep to resume (no grid_sweep.yaml); "
                             f"{self.names.resume.format('<the sweep dir>')}")
        seed = self.settings.seed
        if seed is not None and saved.get("seed") not in (None, seed):
            raise SweepError(f"resume refused: the sweep in {self.sweep_dir} used seed {saved.get('seed')}, "
                             f"not {self.names.seed.format(seed)}")
        return saved

    # -- running and the end -------------------------------------------------------------------
    def recorder(self, swept: Sequence[str], eta: bool = True) -> Any:
        """The JobListener that records each job as it ends and shows progress."""
        from grid_sweeper.definition import save_definition
        from grid_sweeper.progress import Progress
        from grid_sweeper.records import SweepRecorder

        self.swept = list(swept)
        save_definition(self.sweep_dir, {**self.definition(), "swept": self.swept})  # for gridsweep wait
        return SweepRecorder(self.sweep_dir, self.size, self.swept, self.settings.max_failure_rate,
                             Progress(self.size, eta=eta), already_done=self.already_done)

    def finish(self) -> Tuple[Dict[str, Any], str]:
        """results.csv, summary.yaml (report.html); the summary and the text that ends the sweep.
        Lets go of the sweep dir."""
        from grid_sweeper.records import conclude, repair_results

        s = self.settings
        try:
            repair_results(self.sweep_dir)  # jobs that recorded themselves while nobody listened
            return conclude(self.sweep_dir, self.size, self.swept, s.metric, s.maximize, s.report)
        finally:
            self.close()

    def close(self) -> None:
        """Let go of the sweep dir (the OS does it too, should the process die)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def as_typed(error: GridExpressionError, typed: Dict[str, str]) -> GridExpressionError:
    """The error showing the flag's value as the user typed it (`typed`: flag name -> text)."""
    text = typed.get(error.flag or "")
    if not text:
        return error
    return GridExpressionError(error.problem, text=text, flag=error.flag, hint=error.hint)


