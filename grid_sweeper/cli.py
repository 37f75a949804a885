"""`gridsweep`: the Grid sweep syntax for any script that takes --flags.

    gridsweep run main.py --alpha "uniform(1e-5, 1e-1, 3)" --beta "[1, 2, 3, 4]"
    gridsweep run --strategy random_search --num_trials 3 main.py --alpha "uniform(1e-5, 1e-1)"
    gridsweep run --launcher slurm --partition gpu --gpus_per_node 1 ./train.sh --lr "[0.1, 0.01]"
    gridsweep report gridsweep_runs/2026-11-29_10-00-00

Options before the script belong to gridsweep; everything after the script is the script's.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from grid_sweeper.errors import GridExpressionError
from grid_sweeper.session import OptionNames, SweepError, SweepSession, SweepSettings
from grid_sweeper.strategies import STRATEGIES

log = logging.getLogger("gridsweep")

EPILOG = """\
flag values (after the script):
  --flag value and --flag=value both work. A flag followed by another flag (or nothing) is a
  toggle: passed through unchanged, never swept. Sweeps: lists [1, 2, 3], range(1, 10, 2),
  distributions NAME(params..., n) such as uniform(1e-5, 1e-1, 3) or loguniform(1e-5, 1e-1)
  (no count: a fresh draw per trial in random_search). Anything else reaches the script
  exactly as typed ('bert' arrives as bert, 1e-2 as 1e-2). Each job is an argv list, never a
  shell string: no value is ever executed.

records (in --sweep_dir): grid_sweep.yaml, results.jsonl (one line as each job ends),
  results.csv, summary.yaml (report.html with --report); per job <n>/command.txt, stdout.log,
  stderr.log, exit_code. A job's return value is the last line of its stdout when that is a
  number or a JSON object, else its exit code; --metric loss picks a key of the JSON object.
"""


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: an abbreviation must never take a flag meant for the script (`--a`)
    parser = argparse.ArgumentParser(prog="gridsweep", description="Grid sweeps for any script that takes --flags.",
                                     allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run a sweep", description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    sweep = run.add_argument_group("sweep")
    sweep.add_argument("--strategy", choices=STRATEGIES, default="grid_search",
                       help="grid_search: every combination; random_search: --num_trials of them; none: one job, "
                            "flags untouched (default: grid_search)")
    sweep.add_argument("--num_trials", type=int, default=10, help="combinations random_search picks (default 10)")
    sweep.add_argument("--seed", type=int, default=None, help="fixes every draw (default: chosen and printed)")
    sweep.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                       help="print the command lines that would run; run nothing")
    sweep.add_argument("--sweep_dir", default=None, help="where records and job dirs go "
                                                          "(default gridsweep_runs/<date>_<time>)")
    sweep.add_argument("--resume", action="store_true", help="rerun in --sweep_dir: skip completed jobs")
    sweep.add_argument("--existing_dir", choices=("refuse", "archive"), default="refuse",
                       help="a --sweep_dir holding an earlier sweep, without --resume: refuse (default), or "
                            "archive its records to previous/<time>/ and start over there")
    sweep.add_argument("--metric", default=None,
                       help="the key of the JSON object a job prints that ranks jobs (dotted for nested "
                            "objects: val.loss); default: a printed number")
    sweep.add_argument("--maximize", action="store_true", help="best jobs have the highest metric (default lowest)")
    sweep.add_argument("--report", action="store_true", help="write report.html at the end (needs plotly)")
    sweep.add_argument("--max_failure_rate", type=float, default=1.0,
                       help="stop launching once more than this fraction of jobs failed (default 1: never)")
    launch = run.add_argument_group("launcher")
    launch.add_argument("--launcher", choices=("local", "slurm"), default="local")
    launch.add_argument("--timeout_min", type=float, default=None, help="per job (slurm default 60)")
    launch.add_argument("--max_parallel", type=int, default=None,
                        help="local: jobs at once (default: GPU sets, else CPUs)")
    launch.add_argument("--gpus", default=None, help="local: comma-separated GPU ids (default: detect)")
    launch.add_argument("--gpus_per_job", type=int, default=0, help="local, slurm --pack: GPUs per job (default 0)")
    launch.add_argument("--partition", default=None, help="slurm: partition")
    launch.add_argument("--gpus_per_node", type=int, default=None, help="slurm: GPUs per job's node")
    launch.add_argument("--cpus_per_task", type=int, default=None, help="slurm: CPUs per task")
    launch.add_argument("--mem_gb", type=float, default=None, help="slurm: memory per node in GB")
    launch.add_argument("--array_parallelism", type=int, default=256, help="slurm: array elements at once")
    launch.add_argument("--account", default=None, help="slurm: account")
    launch.add_argument("--qos", default=None, help="slurm: QOS")
    launch.add_argument("--pack", action="store_true",
                        help="slurm: run the jobs in --workers allocations that pull them, --gpus_per_job GPUs each")
    launch.add_argument("--workers", type=int, default=None,
                        help="slurm --pack: allocations (default: enough for the sweep, at most --array_parallelism)")
    launch.add_argument("--jobs_per_worker", type=int, default=None,
                        help="slurm --pack: jobs at once in each (default: GPUs / --gpus_per_job, else 1)")
    launch.add_argument("--detach", action="store_true",
                        help="slurm: submit every job and exit; the jobs record themselves (follow with "
                             "gridsweep status|wait SWEEP_DIR)")
    run.add_argument("script", help="a .py file (run with this Python) or any executable")
    run.add_argument("script_args", nargs=argparse.REMAINDER, help="the script's own arguments")
    report = commands.add_parser(
        "report", help="write report.html of a sweep dir", allow_abbrev=False,
        description="Write SWEEP_DIR/report.html: a parallel-coordinates chart of the swept flags against the "
                    "metric, the metric against each flag, and the results table (needs plotly: "
                    "pip install 'hydra-grid-sweeper[report]'). Works for gridsweep and Hydra sweep dirs.",
    )
    report.add_argument("sweep_dir", help="a sweep's dir (the one holding results.jsonl)")
    _dir_command(commands, "status", "where a sweep stands",
                 "Counts of the sweep's jobs (completed, failed, not ended or not run), the best jobs so far, "
                 "the failed jobs with their error and log, and whether a sweep is running in the dir now. "
                 "Reads the dir alone: works for gridsweep and Hydra sweep dirs, with no process of the sweep "
                 "alive and without Slurm accounting.")
    _dir_command(commands, "wait", "follow a sweep to its end",
                 "Attach to a sweep whose launching process is gone (detached, hung up, killed): follow its "
                 "Slurm jobs until every one has ended, with live progress, then write results.csv and "
                 "summary.yaml. Exit 0 when every job completed, 1 otherwise. A live sweep in the dir is "
                 "waited for.")
    report.add_argument("--metric", default=None, help="default: the sweep's own metric")
    direction = report.add_mutually_exclusive_group()
    direction.add_argument("--maximize", dest="maximize", action="store_true", default=None,
                           help="highest is best (default: as the sweep was run)")
    direction.add_argument("--minimize", dest="maximize", action="store_false", help="lowest is best")
    return parser


def _dir_command(commands: Any, name: str, summary: str, description: str) -> None:
    """A subcommand that takes a sweep dir and nothing else."""
    command = commands.add_parser(name, help=summary, description=description, allow_abbrev=False)
    command.add_argument("sweep_dir", help="a sweep's dir (the one holding grid_sweep.yaml)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if args.command == "report":
        return make_report(args)
    if args.command == "status":
        return show_status(args)
    if args.command == "wait":
        return wait_for(args)
    try:
        return run_sweep(args)
    except KeyboardInterrupt as stop:  # outside the launchers, which end their jobs themselves
        from grid_sweeper.interrupts import exit_code

        log.warning("interrupted")
        return exit_code(stop)
    except (GridExpressionError, SweepSetupError) as error:  # bad input: one error, exit 2
        print(f"gridsweep: {error}", file=sys.stderr)
        return 2


def show_status(args: argparse.Namespace) -> int:
    from grid_sweeper.status import NoSweep, sweep_status

    try:
        _, text = sweep_status(Path(args.sweep_dir))
    except NoSweep as error:
        print(f"gridsweep: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0


def wait_for(args: argparse.Namespace) -> int:
    from grid_sweeper.attach import wait_for_sweep
    from grid_sweeper.interrupts import exit_code, sigterm_as_interrupt
    from grid_sweeper.status import NoSweep

    try:
        with sigterm_as_interrupt():
            summary, text = wait_for_sweep(Path(args.sweep_dir))
    except NoSweep as error:
        print(f"gridsweep: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # the jobs go on: wait again, or resume
        print(f"gridsweep: stopped waiting; the jobs go on: gridsweep wait {args.sweep_dir}", file=sys.stderr)
        return exit_code(stop)
    print(text, file=sys.stderr)
    return 0 if summary["completed"] == summary["total"] else 1


def make_report(args: argparse.Namespace) -> int:
    from grid_sweeper.report import ReportUnavailable, write_report

    try:
        path = write_report(Path(args.sweep_dir), args.metric, args.maximize)
    except ReportUnavailable as error:
        print(f"gridsweep: {error}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"gridsweep: {error}", file=sys.stderr)
        return 2
    print(path.absolute())
    return 0


class SweepSetupError(Exception):
    """The sweep cannot start: bad options, a missing script, a refused resume."""


def script_command(script: str) -> List[str]:
    """How to start the script: .py with this interpreter, anything else as it is."""
    if script.endswith(".py"):
        if not Path(script).is_file():
            raise SweepSetupError(f"no such script: {script}")
        return [sys.executable, script]
    path = Path(script)
    if os.sep not in script and not path.exists():
        if shutil.which(script) is None:
            raise SweepSetupError(f"no such executable: {script} (not a file here, not on PATH)")
        return [script]
    if not path.is_file():
        raise SweepSetupError(f"no such executable: {script}")
    if not os.access(path, os.X_OK):
        raise SweepSetupError(f"{script} is not executable: chmod +x it, or run it through its interpreter")
    return [script]


def _hydra_path(path: Path) -> str:
    """An absolute path as a Hydra override value: quoted unless plain (`(`, `,`, `=`, `'`, spaces)."""
    text = str(path.absolute())
    if re.fullmatch(r"[\w/.\-]+", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def is_hydra_app(script: str) -> bool:
    """Whether a .py script is a Hydra app: its parallel jobs then need a run dir each."""
    if not script.endswith(".py"):
        return False
    try:
        return "hydra.main" in Path(script).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


DEFAULT_SWEEP_DIR = "gridsweep_runs/%Y-%m-%d_%H-%M-%S"
CLI_NAMES = OptionNames(strategy="--strategy {}", seed="--seed {}", num_trials="--num_trials {}",
                        resume="rerun with --resume --sweep_dir {}", existing_dir="--existing_dir {}")


def run_sweep(args: argparse.Namespace) -> int:
    from grid_sweeper.script_flags import Option, Passthrough, job_argv, literal_argv, parse_script_args
    from grid_sweeper.space import Flag

    if args.resume and args.sweep_dir is None:
        raise SweepSetupError("--resume needs --sweep_dir <the sweep's dir>")
    if args.detach and args.launcher != "slurm":
        raise SweepSetupError("--detach needs --launcher slurm: local jobs end with the process that runs them")
    if args.pack and args.launcher != "slurm":
        raise SweepSetupError("--pack needs --launcher slurm (locally, every job already runs in this allocation)")
    command = script_command(args.script)
    tokens = parse_script_args(args.script_args, evaluate=args.strategy != "none")
    options = [t for t in tokens if isinstance(t, Option)]
    swept = [t for t in options if t.is_sweep]
    sweep_dir = Path(args.sweep_dir) if args.sweep_dir else None
    settings = SweepSettings(strategy=args.strategy, num_trials=args.num_trials, seed=args.seed,
                             metric=args.metric, maximize=args.maximize, max_failure_rate=args.max_failure_rate,
                             report=args.report, resume=args.resume, existing_dir=args.existing_dir)
    passed = [t.text for t in tokens if not isinstance(t, Option)]
    identity = {"command": [args.script], "flags": [f"{t.name}={t.text}" for t in options] + passed}
    default_dir = sweep_dir is None
    if default_dir:  # made just before the sweep starts (below), so that bad input leaves no dir
        sweep_dir = Path(time.strftime(DEFAULT_SWEEP_DIR))
    try:
        session = SweepSession(sweep_dir, settings, CLI_NAMES, identity=identity, logger=log)
        plan = session.plan([Flag(t.name, t.expression) for t in swept])
    except (SweepError, ValueError) as error:
        raise SweepSetupError(str(error)) from None
    own_run_dir = is_hydra_app(args.script) and not any(
        isinstance(t, Option) and t.name == "hydra.run.dir" for t in tokens)

    def argv_of(number: int) -> List[str]:
        if plan is None:
            argv = command + literal_argv(args.script_args)
        else:
            argv = command + job_argv(tokens, dict(plan[number]))
        if own_run_dir:  # parallel Hydra jobs must not share Hydra's timestamped run dir
            argv.append(f"hydra.run.dir={_hydra_path(sweep_dir / str(number))}")
        return argv

    def overrides_of(number: int) -> List[str]:
        from grid_sweeper.script_flags import format_value

        if plan is None:
            return [f"{t.name}={t.text}" for t in options]
        return [f"{name}={format_value(value)}" for name, value in plan[number]]

    if args.dry_run:
        toggles = [t.text for t in tokens if isinstance(t, Passthrough) and t.toggle]
        notes = [f"toggles passed through unchanged (never swept): {' '.join(toggles)}"] if toggles else []
        print(session.dry_run(lambda n: f"#{n} : {shlex.join(argv_of(n))}", notes, verb="run"))
        return 0
    if default_dir:  # a new dir of its own, also for two runs started in the same second
        from grid_sweeper.sweep_dir import fresh_dir

        sweep_dir = session.sweep_dir = fresh_dir(DEFAULT_SWEEP_DIR)
    try:
        numbers, _ = session.start()
    except SweepError as error:
        raise SweepSetupError(str(error)) from None
    try:
        jobs = [(n, argv_of(n), overrides_of(n)) for n in numbers]
        return _launch_and_report(jobs, session, [t.name for t in swept], args)
    finally:
        session.close()


def _launch_and_report(jobs: List[Any], session: SweepSession, swept: List[str], args: argparse.Namespace) -> int:
    from grid_sweeper.events import Detached
    from grid_sweeper.interrupts import exit_code, sigterm_as_interrupt
    from grid_sweeper.script_metrics import MetricListener

    sweep_dir, size = session.sweep_dir, session.size
    recorder = session.recorder(swept)
    listener = MetricListener(recorder, sweep_dir)
    for number, argv, _ in jobs:
        job_dir = sweep_dir / str(number)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "command.txt").write_text(shlex.join(argv) + "\n", encoding="utf-8")
    stopped: Optional[BaseException] = None
    try:
        with sigterm_as_interrupt():
            if args.launcher == "slurm":
                stopped = _run_slurm(jobs, sweep_dir, listener, args)
            else:
                stopped = _run_local(jobs, sweep_dir, listener, args)
    except KeyboardInterrupt as stop:  # between jobs, outside the launcher's own handling
        stopped = stop
    except Detached as detached:
        session.close()
        print(f"gridsweep: detached: {detached}; each job records its own end in {sweep_dir}\n"
              f"  where the sweep stands:  gridsweep status {sweep_dir}\n"
              f"  follow it to its end:    gridsweep wait {sweep_dir}", file=sys.stderr)
        return 0
    finally:
        recorder.close()
    summary, text = session.finish()
    print(text, file=sys.stderr)
    if recorder.stopped_for_failures:
        print(f"gridsweep: stopped launching new jobs: more than max_failure_rate={args.max_failure_rate} "
              f"of the {size} jobs failed", file=sys.stderr)
    if stopped is not None:
        print(f"gridsweep: interrupted; resume with: gridsweep run --resume --sweep_dir {sweep_dir} ...",
              file=sys.stderr)
        return exit_code(stopped)
    return 1 if summary["failed"] or summary["not_run"] else 0


def _run_local(jobs: List[Any], sweep_dir: Path, listener: Any, args: argparse.Namespace) -> Optional[BaseException]:
    from grid_sweeper.launch.local import Interrupted, JobSpec, LocalPool

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    pool = LocalPool(
        max_parallel=args.max_parallel, gpus=gpus, gpus_per_job=args.gpus_per_job,
        timeout_s=args.timeout_min * 60 if args.timeout_min else None, listener=listener,
    )
    specs = [JobSpec(number=n, argv=argv, output_dir=str(sweep_dir / str(n)), overrides=overrides,
                     cwd=os.getcwd(), label=f"job #{n}") for n, argv, overrides in jobs]
    stopped: Optional[BaseException] = None
    try:
        results = pool.run(specs)
    except Interrupted as stop:
        results, stopped = stop.results, stop
    for result in results:
        if result.returncode is not None:
            Path(result.spec.output_dir, "exit_code").write_text(f"{result.returncode}\n")
    return stopped


def _run_slurm(jobs: List[Any], sweep_dir: Path, listener: Any, args: argparse.Namespace) -> Optional[BaseException]:
    from grid_sweeper.attach import adoptable, ledger_writer
    from grid_sweeper.events import Detached
    from grid_sweeper.launch.slurm import SlurmOptions, SlurmRunner, SlurmTask
    from grid_sweeper.script_job import RecordedCommand

    options = SlurmOptions(
        folder=str(sweep_dir.absolute() / ".submitit" / "%j"), name="gridsweep", partition=args.partition,
        timeout_min=int(args.timeout_min or 60), gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, array_parallelism=args.array_parallelism,
        account=args.account, qos=args.qos, python=sys.executable, detach=args.detach,
        pack=args.pack, workers=args.workers, jobs_per_worker=args.jobs_per_worker, gpus_per_job=args.gpus_per_job,
    )
    tasks = [SlurmTask(fn=RecordedCommand(argv, str(sweep_dir.absolute()), number, overrides, os.getcwd()),
                       number=number, overrides=overrides, label=shlex.join(argv))
             for number, argv, overrides in jobs]
    if args.pack:
        from grid_sweeper.launch.pack import run_packed

        try:
            arrays = run_packed(options, str(sweep_dir), [(t.number, t.fn, t.overrides) for t in tasks], listener)
        except KeyboardInterrupt as stop:
            return stop
        if args.detach:
            raise Detached(len(tasks), f"packed workers, Slurm arrays {' '.join(arrays)}")
        return None
    runner = SlurmRunner(options, listener=listener, on_submitted=ledger_writer(sweep_dir, options),
                         keep_on_hangup=True)
    adopted = adoptable(runner, sweep_dir, [number for number, _, _ in jobs])
    try:
        runner.run(tasks, adopted=adopted, detach=args.detach)
    except KeyboardInterrupt as stop:
        return stop
    if args.detach:
        arrays = " ".join(a.array_id for a in runner.arrays)
        raise Detached(len(tasks) - len(adopted), f"Slurm arrays {arrays}" if arrays else "")
    return None


if __name__ == "__main__":
    sys.exit(main())
