"""A Hydra app whose jobs succeed, fail in a chosen way, or hang; each writes a JSON record.

    python jobs_app.py -m hydra/launcher=grid_local mode=ok,raise out=/tmp/records
"""
import hydra
from jobs_task import run
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> object:
    return run(cfg)


if __name__ == "__main__":
    main()
