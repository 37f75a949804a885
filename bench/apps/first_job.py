"""Bench app: the first job prints how long after the command started it began, then ends the sweep."""
import os
import time
from typing import Any

import hydra


@hydra.main(version_base=None, config_path=None)
def main(cfg: Any) -> None:
    started = float(os.environ["BENCH_STARTED"])
    print(f"FIRST_JOB_AFTER {time.time() - started:.4f}", flush=True)
    os._exit(0)  # one job is enough: the figure is the time until the first job starts


if __name__ == "__main__":
    main()
