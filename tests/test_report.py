"""report.html: written by a sweep and by `gridsweep report`, rendered in a real headless Chromium."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from browser import artifacts_dir
from sweep_helpers import APPS, run_app

from grid_sweeper.report import Axis

APP = APPS / "sweeper" / "app.py"
SCRIPT = APPS / "cli" / "record_args.py"


def gridsweep(cwd: Path, *args: str, env: Any = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grid_sweeper.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_axes_log_where_drawn_log_uniformly_or_spanning_decades() -> None:
    assert Axis("lr", ["0.01", "0.02"], drawn_log=True).log
    assert Axis("lr", ["0.001", "0.5"], drawn_log=False).log  # spans 2.7 decades
    assert not Axis("lr", ["0.1", "0.5"], drawn_log=False).log
    assert not Axis("x", ["-1", "100"], drawn_log=False).log  # not all positive
    text = Axis("opt", ["sgd", "adam", "sgd"], drawn_log=False)
    assert not text.numeric and text.categories == ["sgd", "adam"]


def test_sweep_report_renders_in_headless_chromium(tmp_path: Path, headless_chromium: Any) -> None:
    sweep_dir = tmp_path / "s"
    proc = run_app(APP, ["-m", "hydra/sweeper=grid", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.seed=3",
                         "alpha=loguniform(1e-4,1e-1,4)", "beta=[1,2,3]", "fail_on_beta=3",
                         "hydra.sweeper.metric=val.loss", "hydra.sweeper.report=true"],
                   tmp_path, env={"RETURN_DICT": "1"})
    assert proc.returncode == 1  # beta=3 fails, on purpose: failed jobs are marked
    report = sweep_dir / "report.html"
    assert f"report.html: {report}" in proc.stdout
    page = report.read_text()
    assert "<script src=" not in page.replace('<script src="data:', "")  # no file to fetch: opens offline
    browser = headless_chromium
    browser.open(report)
    assert browser.wait_until("document.querySelectorAll('#parcoords .main-svg').length > 0")
    assert browser.wait_until("document.querySelectorAll('#scatter .main-svg').length > 0")
    labels = browser.evaluate("Array.from(document.querySelectorAll('#parcoords text.axis-title'))"
                              ".map(e => e.textContent)")
    assert labels == ["alpha (log)", "beta", "val.loss"]
    points = browser.evaluate("document.querySelectorAll('#scatter .scatterlayer .point').length")
    assert points == 2 * 8  # one chart per swept flag, one point per completed job
    log_axes = browser.evaluate("document.getElementById('scatter').layout.xaxis.type")
    assert log_axes == "log"
    rows = browser.evaluate("Array.from(document.querySelectorAll('#results tbody tr'))"
                            ".map(r => [r.className, r.cells[0].textContent])")
    assert len(rows) == 12 and [cls for cls, _ in rows] == [""] * 8 + ["failed"] * 4
    assert [job for _, job in rows[8:]] == ["2", "5", "8", "11"]
    metrics = browser.evaluate("Array.from(document.querySelectorAll('#results tbody tr'))"
                               ".slice(0, 8).map(r => parseFloat(r.cells[4].textContent))")
    assert metrics == sorted(metrics)  # sorted by the metric, lowest (best) first
    shot = browser.screenshot(artifacts_dir() / "report.png")
    assert shot.stat().st_size > 20_000
    assert browser.errors() == []
    assert all(url.startswith(("file:", "data:", "blob:")) for url in browser.requested_urls())


def test_gridsweep_report_of_a_cli_sweep(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    record = tmp_path / "r.jsonl"
    proc = gridsweep(tmp_path, "run", "--sweep_dir", str(sweep_dir), "--metric", "loss", str(SCRIPT),
                     "--alpha", "[0.5, 0.25]", "--beta", "[1, 2]", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    assert not (sweep_dir / "report.html").exists()
    made = gridsweep(tmp_path, "report", str(sweep_dir), "--maximize")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(sweep_dir / "report.html")
    page = (sweep_dir / "report.html").read_text()
    assert "highest first" in page and 'id="parcoords"' in page and "plotly" in page
    assert gridsweep(tmp_path, "report", str(tmp_path / "nowhere")).returncode == 2


def test_without_plotly_the_command_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "plotly"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('plotly is not installed here')\n")
    sweep_dir = tmp_path / "s"
    record = tmp_path / "r.jsonl"
    assert gridsweep(tmp_path, "run", "--sweep_dir", str(sweep_dir), str(SCRIPT), "--beta", "[1]",
                     "--record", str(record)).returncode == 0
    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    proc = gridsweep(tmp_path, "report", str(sweep_dir), env=env)
    assert proc.returncode == 1 and "pip install 'hydra-grid-sweeper[report]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    run = gridsweep(tmp_path, "run", "--report", "--sweep_dir", str(tmp_path / "t"), str(SCRIPT), "--beta", "[1]",
                    "--record", str(record), env=env)
    assert run.returncode == 0 and "report.html not written" in run.stderr and "[report]" in run.stderr


def test_example_app_report_for_the_readme(tmp_path: Path, headless_chromium: Any) -> None:
    """The README's screenshot (docs/report.png is a copy of tests/artifacts/example-report.png)."""
    example = Path(__file__).parents[1] / "example_app" / "train.py"
    sweep_dir = tmp_path / "multirun" / "example"
    proc = run_app(example, ["-m", "hydra/sweeper=grid", "hydra/launcher=grid_local",
                             "hydra.sweep.dir=multirun/example", "hydra.sweeper.seed=1",
                             "lr=loguniform(1e-3,1,6)", "epochs=[5,20]", "optimizer=sgd,momentum",
                             "hydra.sweeper.report=true"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    headless_chromium.open(sweep_dir / "report.html")
    assert headless_chromium.wait_until("document.querySelectorAll('#scatter .main-svg').length > 0")
    assert headless_chromium.errors() == []
    headless_chromium.screenshot(artifacts_dir() / "example-report.png")
