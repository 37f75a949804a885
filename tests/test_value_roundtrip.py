"""Values round-trip: what a job gets equals what the user typed or the engine drew, type included.

The grid sweeper hands each job its values as override text (`format_value`); the job's Hydra
parses that text again. The properties run generated values (any unicode, punctuation, quotes,
backslashes, control characters, numbers, nested lists) through that trip with Hydra's own parser
and Hydra's own way of applying overrides. The end-to-end tests check real jobs on both front ends.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, List

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from sweep_helpers import APPS, run_app

from grid_sweeper.dimensions import Choices
from grid_sweeper.expressions import parse_expression
from hydra_plugins.hydra_grid_sweeper._overrides import format_value

# Texts without `${`: Hydra reads `${...}` in a value as an interpolation, by design (docs/syntax.md).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).filter(lambda t: "${" not in t)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


def through_hydra(value: Any) -> Any:
    """The value a job's config holds after Hydra parsed and applied `+y=<format_value(value)>`."""
    overrides = OverridesParser.create().parse_overrides([f"+y={format_value(value)}"])
    cfg = OmegaConf.create({})
    OmegaConf.set_struct(cfg, True)
    ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
    return OmegaConf.to_container(cfg, resolve=True)["y"]


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 is not True, 1.0 is not 1)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isinf(a):
        return a == b
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_every_value_survives_the_trip_through_hydra(value: Any) -> None:
    assert same(through_hydra(value), value), (value, format_value(value))


def grid_quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4), st.booleans())
def test_typed_strings_reach_the_job_as_typed(texts: List[str], commas: bool) -> None:
    """A Grid list of quoted strings, with or without commas (numpy's print style): the engine
    reads the same strings either way, and each reaches the job's config unchanged."""
    typed = "[" + (", " if commas else " ").join(grid_quoted(t) for t in texts) + "]"
    expression = parse_expression(typed, flag="y")
    assert isinstance(expression, Choices) and list(expression.values) == texts
    assert [through_hydra(v) for v in expression.values] == texts


def test_floats_in_shortest_form_and_float_ranges_exact() -> None:
    assert format_value(0.1) == "0.1" and through_hydra(0.7) == 0.7
    assert format_value(1e-05) == "1e-05" and same(through_hydra(1e-05), 1e-05)
    assert same(through_hydra(float("-inf")), float("-inf"))


HOSTILE = ["ü", "日本", "naïve", "a;b", "~a", "&", "#", "!", "<", ">", "^", "`", "a\nb", "\x07", "tRuE",
           "1_000", "null", "a b", "'", '"', "a\\b"]


def test_hostile_strings_reach_hydra_jobs_as_typed(tmp_path: Path) -> None:
    typed = "[" + ", ".join(grid_quoted(t) for t in HOSTILE) + "]"
    proc = run_app(APPS / "lists" / "app.py", ["-m", "hydra/sweeper=grid", f"name={typed}", "beta=[1 2]",
                                               f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = sorted((tmp_path / "sweep").glob("*/received.json"), key=lambda p: int(p.parent.name))
    got = [json.loads(p.read_text()) for p in jobs]
    assert [(j["name"], j["beta"]) for j in got] == [(t, b) for t in HOSTILE for b in (1, 2)]


def test_hostile_strings_reach_gridsweep_jobs_as_typed(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    typed = "[" + ", ".join(grid_quoted(t) for t in HOSTILE) + "]"
    gridsweep = Path(sys.executable).with_name("gridsweep")
    proc = subprocess.run([str(gridsweep), "run", "--sweep_dir", str(tmp_path / "sweep"),
                           str(APPS / "cli" / "record_args.py"), "--name", typed, "--record", str(record)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(j["name"] for j in got) == sorted(HOSTILE)
