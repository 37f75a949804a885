"""Test app: records the config it received in its job dir; fails on request."""
import json
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


@dataclass
class AppConfig:
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"db": "mysql"}])
    db: Any = None
    alpha: float = 0.5
    beta: int = 1
    name: str = "bert"
    flag: bool = False
    fail_on_beta: Optional[int] = None


ConfigStore.instance().store(name="typed", node=AppConfig)


@hydra.main(version_base=None, config_path="conf", config_name=os.environ.get("APP_CONFIG", "typed"))
def main(cfg: Any) -> Any:
    out = HydraConfig.get().runtime.output_dir
    _run_log(f"start {HydraConfig.get().job.num} {os.getpid()}")
    received = OmegaConf.to_container(cfg, resolve=True)
    received["job_num"] = HydraConfig.get().job.num
    with open(os.path.join(out, "received.json"), "w") as f:
        json.dump(received, f)
    if cfg.get("fail_on_beta") is not None and cfg.get("beta") == cfg.fail_on_beta:
        marker = os.environ.get("FAIL_MARKER")  # when set, fail only while this file exists
        if marker is None or os.path.exists(marker):
            raise RuntimeError(f"beta={cfg.beta} is cursed")
    delay = float(os.environ.get("JOB_SLEEP", "0"))
    if os.environ.get("JOB_TALK"):  # output while the sweep's progress line is live
        print(f"training with alpha={cfg.alpha}", flush=True)
    if delay:
        import time

        time.sleep(delay)
    if os.environ.get("JOB_TALK"):
        print(f"done with alpha={cfg.alpha}", flush=True)
    with open(os.path.join(out, "completed.txt"), "a") as f:  # one line per run that got to its end
        f.write("done\n")
    _run_log(f"end {HydraConfig.get().job.num} {os.getpid()}")
    alpha = float(cfg.get("alpha", 0.0))
    if os.environ.get("RETURN_DICT"):  # a metric dict, as lightning-hydra-template returns
        return {"loss": alpha, "acc": round(1 - alpha, 6), "val": {"loss": 2 * alpha}, "note": "ok"}
    return alpha


def _run_log(line: str) -> None:
    """One line per event in RUN_LOG (shared by all jobs; a line is one append)."""
    path = os.environ.get("RUN_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


if __name__ == "__main__":
    main()
