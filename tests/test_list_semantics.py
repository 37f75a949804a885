"""Lists keep Hydra's meaning where the config holds a list; elsewhere they sweep (docs/sweeper.md).

Each row of the table runs the real app with `hydra/sweeper=grid` and reads what every job's
process received (JSON written by the job), on a structured config and on plain YAML.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

APP = Path(__file__).parent / "apps" / "lists" / "app.py"

# (override, key, what the jobs receive, in job order)
TABLE = [
    ("tags=[benchmark]", "tags", [["benchmark"]]),  # lightning-hydra-template's README command
    ("split=[55000,5000,10000]", "split", [[55000, 5000, 10000]]),
    ("tags=[]", "tags", [[]]),
    ("tags=[[a,b],[c]]", "tags", [["a", "b"], ["c"]]),  # a list of lists sweeps list values
    ("beta=[1,2,3]", "beta", [1, 2, 3]),  # a scalar key: Grid's sweep of the elements
    ("name=['x y', z]", "name", ["x y", "z"]),
    ("+new=[p,q]", "new", ["p", "q"]),  # a new key: sweep
]
TYPED_ONLY = [
    ("extra=[a,b]", "extra", [["a", "b"]]),  # Optional[List[str]] = None: still a list field
    ("anything=[1,2]", "anything", [1, 2]),  # Any = None holds no list: sweep
]


def sweep(tmp_path: Path, config: str, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(APP), "-m", "hydra/sweeper=grid", *overrides, f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path, env=dict(os.environ, APP_CONFIG=config), capture_output=True, text=True, timeout=120,
    )


def received(tmp_path: Path) -> List[Any]:
    jobs = sorted((tmp_path / "sweep").glob("*/received.json"), key=lambda p: int(p.parent.name))
    return [json.loads(p.read_text()) for p in jobs]


@pytest.mark.parametrize("config", ["typed", "untyped"])
@pytest.mark.parametrize("override,key,expected", TABLE)
def test_list_semantics(tmp_path: Path, config: str, override: str, key: str, expected: List[Any]) -> None:
    proc = sweep(tmp_path, config, override)
    assert proc.returncode == 0, proc.stderr
    jobs = received(tmp_path)
    assert [job[key] for job in jobs] == expected
    assert [type(job[key]) for job in jobs] == [type(value) for value in expected]
    assert [job["job_num"] for job in jobs] == list(range(len(expected)))


@pytest.mark.parametrize("override,key,expected", TYPED_ONLY)
def test_list_semantics_of_typed_fields(tmp_path: Path, override: str, key: str, expected: List[Any]) -> None:
    proc = sweep(tmp_path, "typed", override)
    assert proc.returncode == 0, proc.stderr
    assert [job[key] for job in received(tmp_path)] == expected


def test_list_keys_required_interpolated_and_inside_a_list(tmp_path: Path) -> None:
    """`List[str] = MISSING`, `logger.tags: ${tags}` and `layers.0` of a list of lists all hold
    lists: a list there is a value, as in Hydra; only `beta` sweeps."""
    proc = sweep(tmp_path, "more", "required=[a,b]", "logger.tags=[x,y]", "layers.0=[4,5]", "beta=[1,2]")
    assert proc.returncode == 0, proc.stderr
    jobs = received(tmp_path)
    assert [j["beta"] for j in jobs] == [1, 2]
    for job in jobs:
        assert (job["required"], job["logger"]["tags"], job["layers"]) == (["a", "b"], ["x", "y"], [[4, 5], [3]])


def test_list_values_and_sweeps_together(tmp_path: Path) -> None:
    """A list value on a list field is in every job; the sweeps multiply as usual."""
    proc = sweep(tmp_path, "typed", "tags=[benchmark]", "split=[1,2,3]", "beta=[1,2]", "+new=[x,y]")
    assert proc.returncode == 0, proc.stderr
    jobs = received(tmp_path)
    assert [(j["beta"], j["new"]) for j in jobs] == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]
    assert all(j["tags"] == ["benchmark"] and j["split"] == [1, 2, 3] for j in jobs)


def test_empty_list_on_a_scalar_is_one_clear_error(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "typed", "beta=[]")
    assert proc.returncode != 0
    assert "flag 'beta'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep" / "0").exists()
