"""`gridsweep status SWEEP_DIR`: where a sweep stands, read from its dir alone.

Needs no process of the sweep alive and no Slurm accounting: the definition says how many jobs
the sweep has, `results.jsonl` which ended how, and the dir's lock whether a sweep is running there
now. Works for `gridsweep` and `hydra/sweeper=grid` sweep dirs alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple


class NoSweep(Exception):
    """The dir holds no grid sweep."""


def sweep_status(sweep_dir: Path) -> Tuple[Dict[str, Any], str]:
    """The sweep's summary (as at its end) plus whether it is live; and the text to print."""
    from grid_sweeper.definition import DEFINITION_FILE, load_definition
    from grid_sweeper.records import summarize, summary_text
    from grid_sweeper.sweep_dir import live_holder

    sweep_dir = Path(sweep_dir)
    definition = load_definition(sweep_dir)
    if definition is None:
        raise NoSweep(f"{sweep_dir} holds no grid sweep (no {DEFINITION_FILE})")
    summary = summarize(sweep_dir, int(definition.get("jobs") or 0), maximize=bool(definition.get("maximize")),
                        metric=definition.get("metric"))
    holder = live_holder(sweep_dir)
    summary["live"] = holder
    if holder:
        state = (f"running: pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                 f"started {holder.get('started', '?')}")
        pending = "not ended yet"
    else:
        state = "not running (ended, interrupted or killed)"
        pending = "not run (resume to run them)"
    text = summary_text(summary).replace(" not run", f" {pending}", 1)
    lines = [f"Sweep {sweep_dir}: {definition.get('strategy')}, {summary['total']} job(s); {state}", text]
    slurm = _slurm_line(sweep_dir, summary)
    if slurm:
        lines.insert(2, slurm)
    return summary, "\n".join(lines)


def _slurm_line(sweep_dir: Path, summary: Dict[str, Any]) -> str:
    """Where the submitted jobs without a record stand on Slurm (its controller, no accounting)."""
    from grid_sweeper.attach import slurm_states
    from grid_sweeper.records import load_results

    counts = slurm_states(sweep_dir, set(load_results(sweep_dir)))
    summary["slurm"] = counts
    if not counts["submitted"]:
        return ""
    unsubmitted = summary["not_run"] - counts["submitted"]
    if counts.get("unreachable"):
        where = f"{counts['submitted']} submitted without a record yet (Slurm's controller unreachable)"
    else:
        ended = counts["submitted"] - counts["pending"] - counts["running"]
        where = (f"on Slurm: {counts['pending']} pending, {counts['running']} running"
                 + (f", {ended} ended without a record yet" if ended else ""))
    return where + (f"; {unsubmitted} not submitted" if unsubmitted > 0 else "")
