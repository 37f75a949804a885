"""report.html: a sweep's shape at a glance, in one self-contained file that opens offline.

A parallel-coordinates chart of the swept flags against the metric, the metric against each swept
flag, and the results table sorted by the metric with failed jobs marked. Charts are plotly's
(the optional extra `pip install hydra-grid-sweeper[report]`); the page embeds plotly.js, so it
needs no network. The table and the rules (columns, metric) come from `grid_sweeper.metrics`, the
same ones results.csv and summary.yaml use.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from grid_sweeper.metrics import (
    flag_values,
    metric_label,
    metric_of,
    ranked,
    table,
)

REPORT_HTML = "report.html"
INSTALL_HINT = "pip install 'hydra-grid-sweeper[report]' (or: pip install plotly)"
#: a positive numeric flag whose largest value is this many times its smallest gets a log axis
DECADES_RATIO = 100.0
#: distributions whose draws are spread on a log scale
LOG_DISTRIBUTIONS = ("loguniform", "reciprocal", "lognormal")


class ReportUnavailable(RuntimeError):
    """plotly is not installed; the message says what to install."""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ReportUnavailable(f"the report needs plotly: {INSTALL_HINT}") from None
    return go


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Axis:
    """One swept flag's values across jobs: numeric (maybe log) or categories."""

    def __init__(self, name: str, texts: Sequence[str], drawn_log: bool) -> None:
        self.name = name
        self.texts = list(texts)
        numbers = [_number(t) for t in texts]
        self.numeric = all(n is not None for n in numbers)
        self.numbers: List[float] = [n for n in numbers if n is not None] if self.numeric else []
        positive = self.numeric and all(n > 0 for n in self.numbers)
        spans = positive and max(self.numbers) >= DECADES_RATIO * min(self.numbers)
        self.log = bool(positive and (drawn_log or spans))
        self.categories = list(dict.fromkeys(self.texts)) if not self.numeric else []


def swept_flags(records: Sequence[Dict[str, Any]], definition: Dict[str, Any]) -> List[str]:
    """Flags whose value differs between jobs, in the order they were given."""
    seen: Dict[str, set] = {}
    for record in records:
        for key, value in flag_values(record["overrides"]).items():
            seen.setdefault(key, set()).add(value)
    return [key for key, values in seen.items() if len(values) > 1] or list(seen)


def _drawn_log(definition: Dict[str, Any]) -> Dict[str, bool]:
    out = {}
    for line in definition.get("flags") or []:
        key, _, text = str(line).partition("=")
        out[key.lstrip("+~")] = text.strip().strip("'\"").startswith(LOG_DISTRIBUTIONS)
    return out


def _parcoords(go: Any, axes: List[Axis], scored: List[Dict[str, Any]], metric: Optional[str],
               maximize: bool) -> Any:
    dimensions = []
    for axis in axes:
        values = [flag_values(r["overrides"]).get(axis.name, "") for r in scored]
        if axis.numeric:
            numbers = [float(v) for v in values]
            if axis.log:
                logs = [math.log10(v) for v in numbers]
                low, high = min(logs), max(logs)  # ticks inside the range only, or they cover the label
                ticks = sorted({low, high, *range(math.ceil(low), math.floor(high) + 1)})
                dimensions.append(dict(label=f"{axis.name} (log)", values=logs, tickvals=ticks,
                                       ticktext=[f"{10 ** t:.2g}" for t in ticks]))
            else:
                distinct = sorted(set(numbers))
                ticks = dict(tickvals=distinct) if len(distinct) <= 10 else {}  # no 1.2 between 1 and 2
                dimensions.append(dict(label=axis.name, values=numbers, **ticks))
        else:
            index = {c: i for i, c in enumerate(axis.categories)}
            dimensions.append(dict(label=axis.name, values=[index[v] for v in values],
                                   tickvals=list(range(len(axis.categories))), ticktext=axis.categories))
    metrics = [metric_of(r["return_value"], metric) for r in scored]
    dimensions.append(dict(label=metric_label(metric), values=metrics))
    figure = go.Figure(go.Parcoords(
        line=dict(color=metrics, colorscale="Viridis", reversescale=not maximize, showscale=True),
        dimensions=dimensions,
    ))
    figure.update_layout(title=f"Swept flags against {metric_label(metric)} (brighter is better)",
                         height=420, margin=dict(l=60, r=60, t=80, b=40))
    return figure


def _scatter(go: Any, axes: List[Axis], scored: List[Dict[str, Any]], metric: Optional[str]) -> Any:
    from plotly.subplots import make_subplots

    columns = min(3, len(axes))
    rows = math.ceil(len(axes) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[a.name for a in axes])
    metrics = [metric_of(r["return_value"], metric) for r in scored]
    for i, axis in enumerate(axes):
        row, col = i // columns + 1, i % columns + 1
        texts = [flag_values(r["overrides"]).get(axis.name, "") for r in scored]
        xs: List[Any] = [float(t) for t in texts] if axis.numeric else texts
        figure.add_trace(go.Scatter(
            x=xs, y=metrics, mode="markers", name=axis.name, showlegend=False,
            text=[f"job #{r['job']}" for r in scored], hovertemplate="%{text}<br>%{x}: %{y}<extra></extra>",
        ), row=row, col=col)
        figure.update_xaxes(type="log" if axis.log else ("category" if not axis.numeric else "linear"),
                            title_text=axis.name + (" (log)" if axis.log else ""), row=row, col=col)
        figure.update_yaxes(title_text=metric_label(metric), row=row, col=col)
    figure.update_layout(title=f"{metric_label(metric)} against each swept flag", height=340 * rows,
                         margin=dict(l=60, r=30, t=80, b=40))
    return figure


def _table_html(records: Sequence[Dict[str, Any]], swept: Sequence[str], metric: Optional[str],
                maximize: bool) -> str:
    best = ranked(records, metric, maximize)
    order = [r["job"] for r in best]
    ranked_jobs = set(order)
    rest = [r for r in records if r["job"] not in ranked_jobs]
    rest.sort(key=lambda r: (r["status"] == "failed", r["job"]))
    by_job = {r["job"]: r for r in records}
    columns, rows = table([by_job[j] for j in order] + rest, swept, metric)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cls = ' class="failed"' if row["status"] == "failed" else ""
        cells = "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _cell(value: Any) -> str:
    """A table cell: floats to 6 significant digits (results.csv keeps every digit)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        number = _number(value)
        if number is not None and "." in value and len(value) > 10:
            return f"{number:.6g}"
    return str(value)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} .note {{ color: #555; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; max-width: 32em; overflow-wrap: anywhere; }}
th {{ background: #f3f3f3; position: sticky; top: 0; }}
tr.failed td {{ background: #fde2e2; color: #8a1010; }}
</style></head><body>
<h1>{title}</h1>
<p class="note">{note}</p>
{charts}
<h2>Results ({order})</h2>
{table}
</body></html>
"""


def build_report(
    records: Sequence[Dict[str, Any]], definition: Dict[str, Any], metric: Optional[str], maximize: bool,
    title: str,
) -> str:
    """The report page of a sweep's records."""
    go = _plotly()
    records = sorted(records, key=lambda r: r["job"])
    swept = swept_flags(records, definition)
    scored = ranked(records, metric, maximize)
    drawn_log = _drawn_log(definition)
    axes = [Axis(name, [flag_values(r["overrides"]).get(name, "") for r in scored], drawn_log.get(name, False))
            for name in swept]
    failed = sum(r["status"] == "failed" for r in records)
    note = (f"{len(records)} job(s) recorded, {failed} failed; metric: {html.escape(metric_label(metric))}, "
            f"{'highest' if maximize else 'lowest'} is best.")
    charts = []
    if scored and axes:
        charts.append(_parcoords(go, axes, scored, metric, maximize).to_html(full_html=False, include_plotlyjs=True,
                                                                             div_id="parcoords"))
        charts.append(_scatter(go, axes, scored, metric).to_html(full_html=False, include_plotlyjs=False,
                                                                 div_id="scatter"))
    else:
        charts.append(f'<p class="note">No chart: no completed job has a number at '
                      f'{html.escape(metric_label(metric))}.</p>')
    order = f"sorted by {metric_label(metric)}, {'highest' if maximize else 'lowest'} first; failed jobs last"
    return PAGE.format(title=html.escape(title), note=note, charts="\n".join(charts), order=html.escape(order),
                       table=_table_html(records, [a.name for a in axes] or swept, metric, maximize))


def write_report(sweep_dir: Path, metric: Optional[str] = None, maximize: Optional[bool] = None) -> Path:
    """report.html in the sweep dir, from its records; metric and direction default to the sweep's."""
    from grid_sweeper.definition import load_definition
    from grid_sweeper.records import load_results

    _plotly()
    sweep_dir = Path(sweep_dir)
    definition = load_definition(sweep_dir) or {}
    records = list(load_results(sweep_dir).values())
    if not records and not definition:
        raise FileNotFoundError(f"{sweep_dir} holds no sweep records (no results.jsonl)")
    metric = metric if metric is not None else definition.get("metric")
    maximize = bool(definition.get("maximize")) if maximize is None else maximize
    page = build_report(records, definition, metric, maximize, title=f"Sweep {sweep_dir}")  # as given: short
    path = sweep_dir / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    return path
