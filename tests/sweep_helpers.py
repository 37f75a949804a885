"""Run test apps as a user does (a subprocess) and read back what each job received."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

APPS = Path(__file__).parent / "apps"


def run_app(
    app: Path, args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`python app.py ARGS` in `cwd`; output captured as text."""
    full_env = dict(os.environ)
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(app), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_dirs(sweep_dir: Path) -> List[Path]:
    """Job output dirs of a sweep, in job-number order."""
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))


def jobs(sweep_dir: Path) -> List[Dict[str, Any]]:
    """Per job: its overrides.yaml and the config the app received."""
    result = []
    for d in job_dirs(sweep_dir):
        overrides = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        received_file = d / "received.json"
        received = json.loads(received_file.read_text()) if received_file.exists() else None
        result.append({"dir": d, "overrides": overrides, "received": received})
    return result
