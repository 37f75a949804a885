"""Structured config of `hydra/sweeper=grid`."""
from dataclasses import dataclass
from typing import Any, Dict, Optional


@dataclass
class GridSweeperConf:
    """Settings of the grid sweeper; each is settable as `hydra.sweeper.<name>=...`."""

    _target_: str = "hydra_plugins.hydra_grid_sweeper.grid_sweeper.GridSweeper"
    #: grid_search (Cartesian product) | random_search (num_trials combinations) | none (one job)
    strategy: str = "grid_search"
    #: number of combinations random_search picks
    num_trials: int = 10
    #: fixes every draw and the random pick; null = choose one and report it
    seed: Optional[int] = None
    #: jobs handed to the launcher at once; null = all in one batch
    max_batch_size: Optional[int] = None
    #: flag -> expression text, merged under the command line's flags
    params: Optional[Dict[str, Any]] = None
    #: print the job list, launch nothing
    dry_run: bool = False
    #: the key of a dict return value that ranks jobs (dotted for nested dicts: val.loss);
    #: null = a number return value is the metric
    metric: Optional[str] = None
    #: the summary's best jobs are those with the highest metric (default: lowest)
    maximize: bool = False
    #: rerun in hydra.sweep.dir=<that dir>: skip completed jobs, run failed and missing ones
    resume: bool = False
    #: stop launching new jobs once more than this fraction of all jobs failed (1 = never)
    max_failure_rate: float = 1.0
    #: write report.html (charts and table; needs plotly: pip install hydra-grid-sweeper[report])
    report: bool = False
    #: a dir that holds an earlier sweep, without resume: refuse (default) | archive (its records
    #: move to previous/<time>/ and a new sweep starts there, as Hydra reuses a sweep dir)
    existing_dir: str = "refuse"
