"""Every bad input is one clean error: it names the flag or option, says what went wrong, and is no
traceback, no hang and no memory blow-up, through both front ends (docs/syntax.md#errors)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from sweep_helpers import APPS, run_app

APP = APPS / "lists" / "app.py"  # typed: tags: List[str], beta: int, name: str, ...
SCRIPT = APPS / "cli" / "record_args.py"
DEEP = "[" * 10_000 + "1" + "]" * 10_000

# (overrides after `-m hydra/sweeper=grid`, what the one error must contain)
HYDRA_CORPUS = [
    ([f"+y={DEEP}"], ["flag 'y'", "nested deeper than 32"]),
    (["beta=[1,2]", "hydra.sweeper.seed=-5"], ["hydra.sweeper.seed", "non-negative int"]),
    (["+y=uniform(0,1,1000000000)"], ["flag 'y'", "ceiling of 1,000,000"]),
    (["+y=uniform(0,1,size=10**12)"], ["flag 'y'"]),
    (["+y=range(1000000000000)", "+z=range(1000000000000)", "hydra.sweeper.strategy=random_search",
      "hydra.sweeper.num_trials=1000000000000"], ["num_trials=1,000,000,000,000", "ceiling"]),
    (["beta=[1,2]", "hydra.sweeper.num_trials=0"], ["hydra.sweeper.num_trials", "positive int"]),
    (["beta=[1,2]", "beta=[3,4]"], ["flag 'beta'", "more than once"]),
    (["+y=range(1,10,0)"], ["flag 'y'", "step must not be zero"]),  # Hydra's own range
    (["+y=range(5,1)"], ["flag 'y'", "empty range"]),
    (["+y=unifrom(0,1,3)"], ["flag 'y'", "did you mean 'uniform'"]),
    (["+y=[1,2"], ["flag 'y'", "unbalanced '['"]),
    (["+y=[]"], ["flag 'y'", "empty list"]),
    (["beta=[]"], ["flag 'beta'", "empty list"]),
    (["+y=uniform(0,1)"], ["flag 'y'", "no count"]),
    (["+y=uniform(0,1,0)"], ["flag 'y'", "positive int"]),
    (["+y=normal(0,-1,3)"], ["flag 'y'", "invalid parameters"]),
    (["+y=__import__('os').system('touch pwned')"], ["flag 'y'", "unknown function '__import__'"]),
]

# (gridsweep options, the script's flags, what the one error must contain)
CLI_CORPUS = [
    ([], ["--y", DEEP], ["flag 'y'", "nested deeper than 32"]),
    (["--seed", "-5"], ["--y", "[1,2]"], ["--seed", "non-negative int"]),
    ([], ["--y", "uniform(0,1,1000000000)"], ["flag 'y'", "ceiling of 1,000,000"]),
    (["--strategy", "random_search", "--num_trials", "1000000000000"],
     ["--y", "range(1000000000000)", "--z", "range(1000000000000)"], ["num_trials", "ceiling"]),
    ([], ["--y", "[1,2]", "--y", "[3,4]"], ["flag 'y'", "more than once"]),
    ([], ["--y", "range(1,10,0)"], ["flag 'y'", "step must not be zero"]),
    ([], ["--y", "unifrom(0,1,3)"], ["flag 'y'", "did you mean 'uniform'"]),
]


def assert_one_clean_error(proc: subprocess.CompletedProcess, fragments: List[str]) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode not in (0, None), output[-2000:]
    assert "Traceback" not in output and "Error executing job" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, output[-2000:]
    assert len(output) < 4000, f"{len(output)} characters of error output"


@pytest.mark.parametrize("overrides,fragments", HYDRA_CORPUS, ids=[str(i) for i in range(len(HYDRA_CORPUS))])
def test_hydra_bad_input(tmp_path: Path, overrides: List[str], fragments: List[str]) -> None:
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", *overrides, f"hydra.sweep.dir={tmp_path}/sweep"],
                   cwd=tmp_path, env={"APP_CONFIG": "typed"}, timeout=60)
    assert_one_clean_error(proc, fragments)
    assert not list((tmp_path / "sweep").glob("*/received.json"))  # no job ran
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("options,flags,fragments", CLI_CORPUS, ids=[str(i) for i in range(len(CLI_CORPUS))])
def test_gridsweep_bad_input(tmp_path: Path, options: List[str], flags: List[str], fragments: List[str]) -> None:
    gridsweep = Path(sys.executable).with_name("gridsweep")
    proc = subprocess.run([str(gridsweep), "run", "--sweep_dir", str(tmp_path / "sweep"), *options, str(SCRIPT),
                           *flags], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    assert_one_clean_error(proc, fragments)
    assert proc.returncode == 2


def test_params_from_the_command_line_sweep(tmp_path: Path) -> None:
    """`hydra.sweeper.params.<flag>=...` on the command line (quoted or not) adds a swept flag."""
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", "hydra.sweeper.params.beta='[3,4]'",
                         "hydra.sweeper.params.anything=randint(10,12,size=2)",
                         f"hydra.sweep.dir={tmp_path}/sweep"],
                   cwd=tmp_path, env={"APP_CONFIG": "typed"})
    assert proc.returncode == 0, proc.stderr
    jobs = sorted((tmp_path / "sweep").glob("*/received.json"), key=lambda p: int(p.parent.name))
    got = [(j["beta"], j["anything"]) for j in (json.loads(p.read_text()) for p in jobs)]
    assert [beta for beta, _ in got] == [3, 3, 4, 4]
    assert all(isinstance(value, int) and 10 <= value < 12 for _, value in got)
    assert got[0][1] == got[2][1] and got[1][1] == got[3][1]  # two draws, crossed with beta
