"""`hydra/launcher=grid_local`: each job in its own local process, GPUs assigned, crashes isolated.

The engine (`grid_sweeper.launch.local`) is imported inside `launch()` so that Hydra's plugin
scan stays fast. This module hands the pool one callable per job that runs the job as Hydra's
`run_job` does (`_run_job`) in the job's process on the job's config, made there in milliseconds
from the config the launcher composed once per group choice before forking
(`_compose.ComposeCache`), and turns the pool's results into `JobReturn`s.
"""
import logging
import os
import pickle
import traceback
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class _HydraJob:
    """The callable a job's process runs: make the job's config, then run it as Hydra's `run_job`
    does (`_run_job.run_hydra_job`).

    A forked job makes its config from the launcher's compose cache, which it inherits with the
    configs composed before the fork: a copy and its value overrides, a few ms, in parallel with
    the other jobs (a job that changes composition is composed by Hydra in its own process).
    Pickled for a spawned child, it takes its ready config along instead of the cache, and
    Hydra's singleton state (config store, resolvers), as the joblib launcher does.
    """

    def __init__(
        self, hydra_context: HydraContext, task_function: TaskFunction, cache: Any,
        overrides: Sequence[str], num: int,
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.cache = cache
        self.overrides = list(overrides)
        self.num = num
        self.composed: Optional[DictConfig] = None
        self.singleton_state: Optional[Dict[str, Any]] = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["singleton_state"] = Singleton.get_state()
        state["composed"] = self.cache.job_config(self.overrides, self.num, self.num)
        state["cache"] = None
        return state

    def prepare(self) -> None:
        """Make the job's config in the launcher, ahead of the job's start (`Preparable`): the
        forked job inherits it. Only from a base: a job that Hydra composes composes itself."""
        if self.composed is None and self.cache is not None:
            self.composed = self.cache.job_config_from_base(self.overrides, self.num, self.num)

    def forget(self) -> None:
        self.composed = None

    def __call__(self) -> JobReturn:
        from grid_sweeper.launch.child import relocate_output
        from hydra_plugins.hydra_grid_sweeper._compose import refresh_env_copy
        from hydra_plugins.hydra_grid_sweeper._run_job import (
            run_hydra_job,
            sweep_output_dir,
            view_as_hydra_config,
        )

        if self.singleton_state is not None:  # spawned: a fresh interpreter (forked: inherited)
            setup_globals()
            Singleton.set_state(self.singleton_state)
        if self.composed is not None:  # made ahead (`prepare`) or sent along (spawned)
            config = self.composed
            refresh_env_copy(config)  # as composing in this process would have
        else:
            config = self.cache.job_config(self.overrides, self.num, self.num)
        view_as_hydra_config(config)  # for `${hydra:...}` in env and dir; run_hydra_job replaces it
        os.environ.update(_resolve_env(config))
        job_dir = sweep_output_dir(config)  # resolved once: for the logs, then for run_hydra_job
        relocate_output(os.path.abspath(job_dir))
        ret = run_hydra_job(self.hydra_context, self.task_function, config, job_dir)
        if ret.status == JobStatus.FAILED and isinstance(ret._return_value, BaseException):
            exc = ret._return_value
            traceback.print_exception(type(exc), exc, exc.__traceback__)  # into stderr.log
            ret._return_value = _sendable(exc)
        return ret


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _one_line(exc: Any) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _judge(value: Any) -> Any:
    from grid_sweeper.launch.jobs import Verdict

    if not isinstance(value, JobReturn):
        return Verdict(False, None, f"the job returned {type(value).__name__}, not a JobReturn")
    if value.status == JobStatus.COMPLETED:
        return Verdict(True, value._return_value)
    return Verdict(False, None, _one_line(value._return_value))


def _resolve_env(config: DictConfig) -> Dict[str, str]:
    """`hydra.launcher.env` of one job, resolved against that job's config.

    A value written escaped (`\\${hydra:job.num}`, needed for `hydra:` keys because Hydra resolves
    the launcher's config once before any job exists) is resolved here, in the job's context.
    """
    node = OmegaConf.select(config, "hydra.launcher.env")
    if node is None:
        return {}
    env = {}
    for key, value in OmegaConf.to_container(node, resolve=True).items():
        text = "" if value is None else str(value)
        if "${" in text:
            text = str(OmegaConf.create({"value": text}, parent=config).value)
        env[str(key)] = text
    return env


class GridLocalLauncher(Launcher):
    """Runs each job in its own process: disjoint GPU sets, `max_parallel` at a time."""

    def __init__(
        self,
        max_parallel: Optional[int] = None,
        gpus: Optional[Sequence[Any]] = None,
        gpus_per_job: int = 0,
        timeout_min: Optional[float] = None,
        env: Optional[Dict[str, Any]] = None,
        start_method: str = "fork",
        console_output: bool = True,
        console_width: int = 200,
        kill_grace_s: float = 5.0,
    ) -> None:
        self.max_parallel = max_parallel
        self.gpus = None if gpus is None else [str(g) for g in gpus]
        self.gpus_per_job = int(gpus_per_job)
        self.timeout_min = timeout_min
        self.start_method = start_method
        self.console_output = console_output
        self.console_width = console_width
        self.kill_grace_s = kill_grace_s
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self._cache: Any = None  # _compose.ComposeCache of this launcher's master config

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra_plugins.hydra_grid_sweeper._compose import install

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self._cache = install(hydra_context.config_loader, config)

    def _pool(self, listener: Any) -> Any:
        from grid_sweeper.launch.gpus import detect_gpus
        from grid_sweeper.launch.local import LocalPool

        if self.gpus_per_job > 0 and self.gpus is None:
            self.gpus = detect_gpus()  # once per launcher, not per batch
        return LocalPool(
            max_parallel=self.max_parallel,
            gpus=self.gpus,
            gpus_per_job=self.gpus_per_job,
            timeout_s=None if self.timeout_min is None else float(self.timeout_min) * 60.0,
            start_method=self.start_method,
            kill_grace_s=self.kill_grace_s,
            console_output=self.console_output,
            console_width=self.console_width,
            listener=listener,
        )

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Hydra's contract: consecutive numbers, no listener (any sweeper)."""
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import consecutive

        return self.launch_jobs(job_overrides, consecutive(initial_job_idx, len(job_overrides)), None)

    def launch_jobs(
        self, job_overrides: Sequence[Sequence[str]], numbers: Sequence[int], listener: Any
    ) -> Sequence[JobReturn]:
        """The grid sweeper's contract (`_launcher_glue.NumberedLauncher`): explicit job numbers,
        each job's start and end told to `listener` as it happens."""
        from grid_sweeper.launch.local import Interrupted, JobSpec
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import end_interrupted
        from hydra_plugins.hydra_grid_sweeper._run_job import prepare as prepare_run_job

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None and self._cache is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        pool = self._pool(listener)
        gpu_note = ""
        if pool.gpu_sets:
            gpu_note = ", GPU sets: " + " ".join(",".join(s) for s in pool.gpu_sets)
        log.info(f"grid_local is launching {len(job_overrides)} jobs, "
                 f"{pool.max_parallel} at a time{gpu_note}")
        log.info(f"Launching jobs, sweep output dir : {sweep_dir}")
        pending_logs = (sweep_dir / _PENDING_LOGS).absolute()
        self._cache.prepare(job_overrides)  # composed here once, shared by the forked jobs
        prepare_run_job()  # loaded here once, not in every job
        specs = []
        for idx, overrides in enumerate(job_overrides):
            num = numbers[idx]
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            target = _HydraJob(self.hydra_context, self.task_function, self._cache, overrides, num)
            specs.append(JobSpec(
                number=num, target=target, overrides=list(overrides), judge=_judge,
                stdout=str(pending_logs / f"job{num}.stdout.log"),
                stderr=str(pending_logs / f"job{num}.stderr.log"),
            ))
        try:
            results = pool.run(specs)
        except Interrupted as e:
            e.job_returns = [self._job_return(r) for r in e.results]  # type: ignore
            end_interrupted(e, listener)
            raise
        finally:
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            _remove_if_empty(pending_logs)
        return [self._job_return(r) for r in results]

    def _job_return(self, result: Any) -> JobReturn:
        """The JobReturn of one pool result: the child's own, or one made here for a failure."""
        from grid_sweeper.events import COMPLETED
        from grid_sweeper.launch.jobs import JobFailed

        ret = result.value if isinstance(result.value, JobReturn) else None
        if result.status == COMPLETED and ret is not None:
            return ret
        if ret is None:
            ret = self._parent_side_return(result)
        cause = result.exception
        if cause is None and isinstance(ret._return_value, BaseException):
            cause = ret._return_value
        error = JobFailed(result.describe(), result)
        error.__cause__ = cause
        ret.status = JobStatus.FAILED
        ret._return_value = error
        return ret

    def _parent_side_return(self, result: Any) -> JobReturn:
        """A JobReturn for a job whose process sent none back (crash, kill, timeout, not run)."""
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import failed_return

        spec = result.spec
        assert self.config is not None
        try:  # the job's config, as its process had it (a few ms; Hydra's compose if it must)
            config = self._cache.job_config(spec.overrides, spec.number, spec.number)
        except Exception:  # noqa: BLE001 - a job whose config does not compose has none
            config = None
        ret = failed_return(spec.overrides, None, config)
        if config is None:
            ret.task_name = str(self.config.hydra.job.name)
        ret.working_dir = result.output_dir or ret.working_dir or None
        return ret


_PENDING_LOGS = ".grid_local"  # where a job's logs start, until it knows its output dir


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
