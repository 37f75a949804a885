"""`hydra/launcher=grid_slurm`: runs a sweep's jobs as SLURM job arrays (engine:
grid_sweeper.launch.slurm). submitit and the engine are imported inside methods so that Hydra's
plugin scan stays fast."""
from __future__ import annotations

import copy
import logging
import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class SlurmHydraJob:
    """One Hydra job, pickled for a node with its config ready, then run there.

    The config is made when the job is pickled at submission, from the launcher's compose cache
    (a few ms; a cold process on the node would spend ~0.1 s composing it), and exists only in
    the pickle: a sweep of 10^4 jobs never holds 10^4 configs in the launcher. What all jobs of a
    launch share (Hydra context, task function, master config, Hydra's singleton state: ~35 ms to
    pickle) is pickled once into `shared_path`, which each job's pickle names instead.
    Checkpointable: on preemption, or a time limit with `max_num_timeout` > 0, submitit requeues
    it and the whole job runs again (the app resumes from what it saved in its output dir).
    """

    def __init__(self, hydra_context: HydraContext, task_function: TaskFunction,
                 config: DictConfig, overrides: List[str], job_num: int,
                 singleton_state: Dict[Any, Any], cache: Any = None,
                 shared_path: Optional[str] = None) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.overrides = overrides
        self.job_num = job_num
        self.singleton_state = singleton_state
        self.cache = cache  # _compose.ComposeCache in the launcher; None once pickled
        self.composed: Optional[DictConfig] = None
        self.shared_path = shared_path  # the shared objects' pickle, when there is one

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        if self.cache is not None:
            state["composed"] = self.cache.compose(self.overrides)
            state["cache"] = None
        if self.shared_path is not None:
            for name in _SHARED:
                state[name] = None
            try:  # plain pickle: ~10x faster than cloudpickle's per-object hook on a config
                return {"_pickled": pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)}
            except Exception:  # noqa: BLE001 - something only cloudpickle can pickle
                pass
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if "_pickled" in state:
            state = pickle.loads(state["_pickled"])
        self.__dict__.update(state)
        if self.shared_path is not None and self.hydra_context is None:
            self.__dict__.update(_load_shared(self.shared_path))

    def __call__(self) -> JobReturn:
        import submitit

        from hydra_plugins.hydra_grid_sweeper._compose import refresh_env_copy
        from hydra_plugins.hydra_grid_sweeper._run_job import run_hydra_job

        Singleton.set_state(self.singleton_state)
        setup_globals()
        if self.composed is not None:
            sweep_config = copy.deepcopy(self.composed)  # pristine again on a requeue
            refresh_env_copy(sweep_config)  # the node's environment, as composing here would
        else:
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(self.overrides))
        with open_dict(sweep_config.hydra.job) as job:
            job.id = submitit.JobEnvironment().job_id
            job.num = self.job_num
        ret = run_hydra_job(self.hydra_context, self.task_function, sweep_config)
        if ret.status == JobStatus.FAILED:
            _report_failure(ret)
        return ret

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _succeeded(value: Any) -> Any:
    """A packed job's verdict: the JobReturn its process sent back says whether the task failed."""
    from grid_sweeper.launch.jobs import Verdict

    if isinstance(value, JobReturn) and value.status != JobStatus.COMPLETED:
        return Verdict(False, None, f"{type(value._return_value).__name__}: {value._return_value}")
    return Verdict(True, value._return_value if isinstance(value, JobReturn) else value)


_SHARED = ("hydra_context", "task_function", "config", "singleton_state")
_shared_loaded: Dict[str, Dict[str, Any]] = {}


def _dump_shared(job: SlurmHydraJob, folder: Path) -> str:
    """Pickle what every job of a launch shares, once, beside the jobs' pickles."""
    import uuid

    import cloudpickle

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".grid_slurm_shared_{uuid.uuid4().hex}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        cloudpickle.dump({name: getattr(job, name) for name in _SHARED}, f)
    os.replace(tmp, path)
    return str(path)


def _load_shared(path: str) -> Dict[str, Any]:
    if path not in _shared_loaded:  # once per process
        with open(path, "rb") as f:
            _shared_loaded[path] = pickle.load(f)
    return _shared_loaded[path]


def _report_failure(ret: JobReturn) -> None:
    """Prints the task's traceback to the job's stderr and keeps its exception picklable."""
    import cloudpickle

    exc = ret._return_value
    if isinstance(exc, BaseException):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
    except Exception:  # noqa: BLE001 - whatever makes it unpicklable
        ret._return_value = RuntimeError(f"{type(exc).__name__}: {exc}")


class GridSlurmLauncher(Launcher):
    """Submits each batch as `sbatch --array` chunks and reports each job as it ends."""

    def __init__(self, **params: Any) -> None:
        self.params: Dict[str, Any] = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in params.items()
        }
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self._output_dirs: Dict[int, str] = {}
        self._cache: Any = None  # _compose.ComposeCache of this launcher's master config

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra_plugins.hydra_grid_sweeper._compose import install

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self._cache = install(hydra_context.config_loader, config)

    @property
    def detaches(self) -> bool:
        """Whether a launch submits the jobs and returns without waiting (`detach`)."""
        return bool(self.params.get("detach"))

    def options(self) -> Any:
        """The engine's SlurmOptions from this launcher's config."""
        from grid_sweeper.launch.slurm import SlurmOptions

        values = {("folder" if k == "submitit_folder" else k): v
                  for k, v in self.params.items() if not k.startswith("_")}
        values["name"] = str(values.get("name") or "hydra")
        return SlurmOptions.from_mapping(values)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        """Hydra's contract: consecutive numbers, no listener (any sweeper)."""
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import consecutive

        return self.launch_jobs(job_overrides, consecutive(initial_job_idx, len(job_overrides)), None)

    def launch_jobs(self, job_overrides: Sequence[Sequence[str]], numbers: Sequence[int], listener: Any
                    ) -> Sequence[JobReturn]:
        """The grid sweeper's contract (`_launcher_glue.NumberedLauncher`): explicit job numbers,
        each job's start and end told to `listener` as Slurm reports it."""
        from grid_sweeper.launch.slurm import SlurmRunner, SlurmTask
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import end_interrupted

        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        setup_globals()
        options = self.options()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep and self.config.hydra.sweep.mode is not None:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("grid_slurm: launching %d job(s), sweep output dir %s", len(job_overrides),
                 sweep_dir)
        from grid_sweeper.launch.slurm_script import first_folder_without_ids

        state = Singleton.get_state()
        template = SlurmHydraJob(self.hydra_context, self.task_function, self.config, [], 0, state)
        shared = _dump_shared(template, first_folder_without_ids(options.folder))
        tasks = []
        for idx, overrides in enumerate(job_overrides):
            number = numbers[idx]
            job = SlurmHydraJob(self.hydra_context, self.task_function, self.config,
                                list(overrides), number, state, cache=self._cache,
                                shared_path=shared)
            tasks.append(SlurmTask(fn=job, number=number, overrides=list(overrides),
                                   label=" ".join(filter_overrides(overrides))))
        self._output_dirs = {}
        if options.pack:
            return self._launch_packed(options, sweep_dir, tasks, listener)
        from grid_sweeper.attach import adoptable, ledger_writer

        recorded = listener is not None  # under the grid sweeper: the jobs record themselves
        runner = SlurmRunner(options, listener=listener, describe=self._event, finalize=self._finalize,
                             on_submitted=ledger_writer(sweep_dir, options) if recorded else None,
                             keep_on_hangup=recorded)
        adopted = adoptable(runner, sweep_dir, numbers) if recorded else {}
        if options.detach and not recorded:
            raise ValueError("hydra.launcher.detach=true needs hydra/sweeper=grid: only its jobs record "
                             "themselves for `gridsweep wait` to collect")
        try:
            results = runner.run(tasks, adopted=adopted, detach=options.detach)
        except KeyboardInterrupt as stop:
            end_interrupted(stop, listener)
            raise  # jobs left running (a hangup, a detach) still need the shared pickle
        if not options.detach:
            Path(shared).unlink(missing_ok=True)  # every job has ended
        if options.detach:
            from grid_sweeper.events import Detached

            arrays = " ".join(a.array_id for a in runner.arrays)
            raise Detached(len(tasks) - len(adopted), f"Slurm arrays {arrays}" if arrays else "")
        return [r.value if isinstance(r.value, JobReturn) else self._failed_return(r, False)[0]
                for r in results]

    def _launch_packed(self, options: Any, sweep_dir: Path, tasks: List[Any], listener: Any
                       ) -> Sequence[JobReturn]:
        """`pack=true`: the jobs run in a few allocations that pull them (grid_sweeper.launch.pack);
        each job's JobReturn is made from its record."""
        from grid_sweeper.events import Detached
        from grid_sweeper.job_records import read, record_path
        from grid_sweeper.launch.pack import run_packed
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import end_interrupted, failed_return

        if listener is None:
            raise ValueError("hydra.launcher.pack=true needs hydra/sweeper=grid: its jobs record themselves, "
                             "which is how packed workers report them")
        jobs = [(task.number, task.fn, task.overrides) for task in tasks]
        try:
            arrays = run_packed(options, str(sweep_dir), jobs, listener, judge=_succeeded)
        except KeyboardInterrupt as stop:
            end_interrupted(stop, listener)
            raise
        if options.detach:
            raise Detached(len(tasks), f"packed workers, Slurm arrays {' '.join(arrays)}")
        returns = []
        for task in tasks:
            record = read(record_path(sweep_dir, task.number))
            if record is not None and record.get("status") == "completed":
                ret = JobReturn(overrides=list(task.overrides), status=JobStatus.COMPLETED)
                ret._return_value = record.get("return_value")
            else:
                error = record.get("error") if record else "not run: no packed worker ran it (resume to run it)"
                ret = failed_return(task.overrides, RuntimeError(error), None)
            returns.append(ret)
        return returns

    # -- turning engine results into JobReturns, events and log links -----------------------

    def _finalize(self, result: Any) -> None:
        """Makes `result.value` the job's JobReturn (FAILED ones carry an exception that names
        the Slurm state and the logs; `result.ok` tells the engine whether it succeeded) and
        links the logs into the job's output dir."""
        from grid_sweeper.launch.slurm_logs import link_logs
        from grid_sweeper.launch.slurm_results import not_requeued_reason, time_limit_error

        ret = result.value if result.ok and isinstance(result.value, JobReturn) else None
        output_dir = ""
        if ret is None:
            ret, output_dir = self._failed_return(result)
        else:
            output_dir = str(OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") or "")
            exc = ret._return_value if ret.status == JobStatus.FAILED else None
            reason = not_requeued_reason(str(exc)) if exc is not None else None
            if reason is not None:
                ret._return_value = time_limit_error(result.job_id, reason, result.logs)
                result.state = "TIMEOUT"
        if ret.status != JobStatus.COMPLETED:
            result.ok, result.error = False, ret._return_value
        result.value = ret
        if output_dir and result.logs and result.job_id:
            link_logs(result.logs, result.job_id, output_dir)
        self._output_dirs[result.index] = output_dir

    def _failed_return(self, result: Any, compose: bool = True) -> Any:
        """A FAILED JobReturn for a job without one, and its output dir; with `compose`, its
        config too (not for jobs that never ran: a sweep may hold many of them)."""
        from hydra_plugins.hydra_grid_sweeper._launcher_glue import failed_return

        config = None
        if compose:
            try:
                config = self._compose(result.task.overrides, result.task.number, result.job_id)
            except Exception as exc:  # noqa: BLE001 - composing is a nicety for failed jobs
                log.debug("cannot compose the config of failed job #%d: %s", result.task.number, exc)
        ret = failed_return(result.task.overrides, result.error, config)
        return ret, ret.working_dir or ""

    def _compose(self, overrides: Sequence[str], number: int, job_id: str) -> DictConfig:
        assert self._cache is not None
        sweep_config = self._cache.compose(overrides)
        with open_dict(sweep_config.hydra.job) as job:
            job.id = job_id or f"job_id_for_{number}"
            job.num = number
        return sweep_config

    def _event(self, result: Any) -> Any:
        from grid_sweeper.events import COMPLETED, FAILED, JobEvent
        from grid_sweeper.launch.slurm_results import one_line

        ret: JobReturn = result.value
        ok = ret.status == JobStatus.COMPLETED
        value = ret._return_value
        return JobEvent(
            number=result.task.number, overrides=list(result.task.overrides),
            status=COMPLETED if ok else FAILED, job_id=result.job_id,
            output_dir=self._output_dirs.get(result.index, ""), start=result.start,
            end=result.end, return_value=value, error="" if ok else one_line(value),
            logs=dict(result.logs),
        )
