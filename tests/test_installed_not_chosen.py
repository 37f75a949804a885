"""Installed but not chosen: without `hydra/sweeper=grid`, Hydra behaves exactly as before.

A corpus of plain Hydra commands (good and bad, run and multirun) runs twice on the same app:
once as if the plugin were not installed (its dirs dropped from sys.path before Hydra starts),
once with the plugin installed. Output and exit code must be equal byte for byte, save the
timestamps of Hydra's log lines. The one documented exception, a Grid expression in a multirun
under another sweeper, is checked on its own.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import pytest

HERE = Path(__file__).parent
RUNNER = HERE / "without_plugin.py"
APP = HERE / "apps" / "plain" / "app.py"
TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]", re.MULTILINE)

# run in both modes: plain `python app.py ...` and `python app.py -m ...`
BOTH_MODES: List[List[str]] = [
    [],
    ["x=3"],
    ["+y=1"],
    ["++x=5"],
    ["~x"],
    ["x="],
    ["zz=1"],
    ["x=abc"],
    ["x=[1,2]"],
    ["name=[a,b]"],
    ["rate=[0.1,0.2]"],
    ["+y=foo(1)"],
    ["+y=[1,2"],
    ["+y=[1,2]"],
    ["tags=[]"],
    ["tags=[b,c]"],
    ["tags=[benchmark]"],
    ["+y={a:1,b:[2,3]}"],
    ["+y='a;b'"],
    ["+y=a;b"],
    ["+y=~a"],
    ["+y=日本"],
    ["+y='ü naïve'"],
    ["+y=a\\ b"],
    ["+y=${x}"],
    ["+y=1", "+y=2"],
    ["x=1,2"],
    ["db=postgresql"],
    ["db=mysql,postgresql"],
    ["db=nope"],
    ["+y=choice(1,2)"],
    ["+y=range(3)"],
    ["+y=range(1,10,0)"],
    ["+y=interval(0,1)"],
    ["+y=int(3.5)"],
    ["+y=glob(*)"],
    ["+y=unifrom(0,1,3)"],
    ["+y=uniform(0,1"],
    ["hydra.job.chdir=true", "+y=1"],
    ["hydra/sweeper=basic", "+y=[1,2"],
    ["--cfg", "job", "+y=1"],
    ["--cfg", "hydra"],
]
# run mode only: in a multirun these are Grid expressions, refused under another sweeper (below)
RUN_ONLY: List[str] = [
    "+y=uniform(0,1,3)",
    "+y=normal(0,1)",
    "+y=['a' 'b']",
    "+y=range(0,10**30)",
]
GRID_EXPRESSIONS = [["+y=uniform(0,1,3)"], ["+y=['a' 'b']"], ["+y=uniform(0,1,3)", "db=mysql,postgresql"]]


def _run(mode: str, args: List[str], cwd: Path) -> Tuple[int, str, str]:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [sys.executable, str(RUNNER), mode, str(APP), *args, "hydra.run.dir=out", "hydra.sweep.dir=multi"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )
    def normal(text: str) -> str:
        return TIMESTAMP.sub("[TIME]", text).replace(str(cwd), "<cwd>")

    return proc.returncode, normal(proc.stdout), normal(proc.stderr)


def _compare(commands: List[List[str]], tmp_path: Path) -> List[str]:
    """Each command with and without the plugin; the differences, one message per command."""
    def both(index_args: Tuple[int, List[str]]) -> str:
        index, args = index_args
        without = _run("--hide", args, tmp_path / f"{index}-without")
        with_plugin = _run("--keep", args, tmp_path / f"{index}-with")
        if without == with_plugin:
            return ""
        return (f"`app.py {' '.join(args)}` differs:\n  without plugin: rc={without[0]}\n"
                f"{without[1]}{without[2]}\n  with plugin: rc={with_plugin[0]}\n{with_plugin[1]}{with_plugin[2]}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [d for d in pool.map(both, enumerate(commands)) if d]


def _commands() -> List[List[str]]:
    commands = []
    for args in BOTH_MODES:
        commands += [args, ["-m", *args]]
    commands += [[line] for line in RUN_ONLY]
    return commands


def test_plain_hydra_commands_behave_as_without_the_plugin(tmp_path: Path) -> None:
    differences = _compare(_commands(), tmp_path)
    assert not differences, "\n\n".join(differences)


def test_the_corpus_reaches_both_outcomes(tmp_path: Path) -> None:
    """The corpus is no list of no-ops: good commands run their jobs, bad ones fail with Hydra's error."""
    code, out, _ = _run("--keep", ["-m", "db=mysql,postgresql"], tmp_path / "good")
    assert code == 0 and "db={'driver': 'postgresql'}:dict" in out
    code, _, err = _run("--keep", ["+y=foo(1)"], tmp_path / "bad")
    assert code == 1 and "Unknown function 'foo'" in err and "Available: bool,choice," in err


def test_hiding_the_plugin_really_hides_it(tmp_path: Path) -> None:
    """The comparison means something only if one side lacks the plugin and the other has it."""
    hidden = _run("--hide", ["-m", "hydra/sweeper=grid", "x=1,2"], tmp_path / "hidden")
    shown = _run("--keep", ["-m", "hydra/sweeper=grid", "x=1,2"], tmp_path / "shown")
    assert hidden[0] == 1 and "Could not find 'hydra/sweeper/grid'" in hidden[2]
    assert shown[0] == 0 and "Sweep summary: 2 completed" in shown[1] + shown[2]


@pytest.mark.parametrize("line", GRID_EXPRESSIONS)
def test_grid_expression_under_another_sweeper_is_refused_by_name(tmp_path: Path, line: List[str]) -> None:
    """The documented exception: a clear refusal that names hydra/sweeper=grid, exit code 1."""
    args = ["-m", *line]
    without = _run("--hide", args, tmp_path / "without")
    code, out, err = _run("--keep", args, tmp_path / "with")
    assert without[0] == 1 and code == 1 and out == ""
    assert err.startswith(f"'{line[0]}' is a Grid expression, which only hydra/sweeper=grid understands")
    assert not (tmp_path / "with" / "multi").exists()  # no job ran


@pytest.mark.parametrize("bypass", ["multirun", "all"])
def test_grid_sweeper_refuses_when_hydra_bypasses_its_hook(tmp_path: Path, bypass: str) -> None:
    """A Hydra whose multirun skips the compose hook gets a refusal, never a wrongly read sweep."""
    proc = subprocess.run(
        [sys.executable, str(APP.parent / "bypassed_hook.py"), "-m", "hydra/sweeper=grid", "+z=[1,2]",
         "hydra.sweep.dir=multi"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "BYPASS": bypass},
    )
    assert proc.returncode != 0, proc.stderr
    assert "hydra/sweeper=grid cannot run on hydra-core" in proc.stderr
    assert "ConfigLoaderImpl.load_configuration" in proc.stderr
    assert not (tmp_path / "multi" / "0").exists()  # no job ran
