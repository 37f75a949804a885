"""The engine's sweep records: results.jsonl, results.csv, summary, progress lines."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from grid_sweeper.events import COMPLETED, FAILED, JobEvent
from grid_sweeper.metrics import metric_of
from grid_sweeper.progress import Progress
from grid_sweeper.records import (
    RESULTS_JSONL,
    SweepRecorder,
    jsonable,
    load_results,
    summarize,
    summary_text,
    write_summary,
)


def event(number: int, value: object = None, failed: bool = False, a: object = 1) -> JobEvent:
    return JobEvent(
        number=number, overrides=[f"a={a}", f"b={number}"], status=FAILED if failed else COMPLETED,
        job_id=str(1000 + number), output_dir=f"/out/{number}", start=100.0, end=101.5,
        return_value=value, error="ValueError: bad\nmore lines" if failed else "",
        logs={"stderr": f"/out/{number}/stderr.log"},
    )


def test_each_finished_job_is_on_disk_at_once(tmp_path: Path) -> None:
    recorder = SweepRecorder(tmp_path, total=3, swept_keys=["a", "b"])
    recorder.job_finished(event(0, 0.5))
    # readable by another process before close: flushed line by line
    lines = (tmp_path / RESULTS_JSONL).read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["job"] == 0 and record["status"] == "completed" and record["return_value"] == 0.5
    assert record["duration"] == 1.5 and record["job_id"] == "1000" and record["output_dir"] == "/out/0"
    assert record["start"].startswith("1970-01-01T00:01:40")
    recorder.job_finished(event(1, failed=True))
    recorder.job_finished(event(1, failed=True))  # a second report of the same job is ignored
    recorder.close()
    records = load_results(tmp_path)
    assert sorted(records) == [0, 1]
    assert records[1]["error"] == "ValueError: bad" and records[1]["return_value"] is None


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / RESULTS_JSONL).write_text('{"job": 0, "status": "completed"}\n{"job": 1, "sta')
    assert list(load_results(tmp_path)) == [0]


def test_jsonable_values() -> None:
    assert jsonable(np.float64(0.25)) == 0.25 and type(jsonable(np.float64(0.25))) is float
    assert jsonable(np.int32(3)) == 3
    assert jsonable({"loss": 1.0, "acc": [1, 2]}) == {"loss": 1.0, "acc": [1, 2]}
    assert jsonable(float("nan")) == "nan"
    assert jsonable(object).startswith("<class")
    assert jsonable(np.zeros(2)).startswith("array(")


def test_csv_has_prefixed_flag_and_return_columns(tmp_path: Path) -> None:
    recorder = SweepRecorder(tmp_path, total=2, swept_keys=["a", "b"])
    recorder.job_finished(event(1, failed=True, a="x"))
    recorder.job_finished(event(0, {"loss": 1, "val": {"acc": 0.5, "hist": [1]}}, a="y"))
    recorder.close()
    rows = list(csv.DictReader(io.StringIO(recorder.write_csv(metric="val.acc").read_text())))
    assert [r["job"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["job", "flag.a", "flag.b", "status", "metric", "return.loss", "return.val.acc",
                             "duration", "error", "log"]
    assert rows[0]["flag.a"] == "y" and rows[0]["return.loss"] == "1" and rows[0]["metric"] == "0.5"
    assert rows[1]["status"] == "failed" and rows[1]["log"] == "/out/1/stderr.log"


def test_no_flag_or_returned_key_clashes_with_our_columns(tmp_path: Path) -> None:
    recorder = SweepRecorder(tmp_path, total=1, swept_keys=["error", "status"])
    recorder.job_finished(JobEvent(number=0, overrides=["error=1", "status=2"], status=COMPLETED,
                                   return_value={"error": 0.25, "job": 7}))
    recorder.close()
    header = recorder.write_csv().read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header))
    assert {"flag.error", "flag.status", "return.error", "return.job", "error", "status", "job"} <= set(header)


def test_metric_lookup() -> None:
    assert metric_of(0.5, None) == 0.5 and metric_of(True, None) is None
    assert metric_of({"loss": 0.3}, None) is None and metric_of({"loss": 0.3}, "loss") == 0.3
    assert metric_of({"val": {"loss": 0.2}}, "val.loss") == 0.2
    assert metric_of({"val/loss": 1.0, "a.b": 2}, "a.b") == 2 and metric_of({"loss": "x"}, "loss") is None
    assert metric_of({"val": {"loss": 0.2}}, "val.acc") is None and metric_of(float("nan"), None) is None


def test_summary_ranks_dict_returns_by_the_metric(tmp_path: Path) -> None:
    recorder = SweepRecorder(tmp_path, total=3)
    for number, acc in [(0, 0.7), (1, 0.9), (2, 0.8)]:
        recorder.job_finished(event(number, {"loss": 1 - acc, "acc": acc}))
    recorder.close()
    summary = summarize(tmp_path, total=3, maximize=True, metric="acc")
    assert [b["job"] for b in summary["best"]] == [1, 2, 0]
    assert summary["best"][0]["metric"] == 0.9 and summary["metric"] == "acc"
    assert "Best jobs (highest acc):" in summary_text(summary)
    missing = summarize(tmp_path, total=3, metric="f1")
    assert missing["best"] == [] and "3 completed job(s) returned no number at 'f1'" in summary_text(missing)


@pytest.mark.parametrize("maximize, best", [(False, [2, 0, 3]), (True, [3, 0, 2])])
def test_summary_best_jobs(tmp_path: Path, maximize: bool, best: list) -> None:
    recorder = SweepRecorder(tmp_path, total=5)
    for number, value in [(0, 0.5), (2, 0.1), (3, 0.9), (4, "n/a")]:
        recorder.job_finished(event(number, value))
    recorder.job_finished(event(1, failed=True))
    recorder.close()
    summary = summarize(tmp_path, total=5, maximize=maximize, best=3)
    assert (summary["completed"], summary["failed"], summary["not_run"]) == (4, 1, 0)
    assert [b["job"] for b in summary["best"]] == best
    assert summary["failures"][0]["log"] == "/out/1/stderr.log"
    write_summary(tmp_path, summary)
    assert yaml.safe_load((tmp_path / "summary.yaml").read_text()) == summary
    text = summary_text(summary)
    assert "4 completed, 1 failed of 5" in text and "#1 a=1 b=1: ValueError: bad" in text


def test_failure_rate_guard(tmp_path: Path) -> None:
    recorder = SweepRecorder(tmp_path, total=10, max_failure_rate=0.2)
    recorder.job_finished(event(0, failed=True))
    recorder.job_finished(event(1, failed=True))
    assert recorder.accepting_new_jobs()  # 2 of 10 is not more than 0.2
    recorder.job_finished(event(2, failed=True))
    assert not recorder.accepting_new_jobs()
    recorder.close()


def test_plain_progress_lines_without_control_characters(tmp_path: Path) -> None:
    stream = io.StringIO()
    recorder = SweepRecorder(tmp_path, total=2, progress=Progress(2, stream=stream))
    recorder.job_started(event(0))
    recorder.job_finished(event(0, 1.0))
    recorder.job_finished(event(1, failed=True))
    recorder.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[sweep] job #0 completed in 1.5s | 1/2 done, 0 running, 0 failed")
    assert lines[1].startswith("[sweep] job #1 failed in 1.5s: ValueError: bad | 2/2 done, 0 running, 1 failed")
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_live_progress_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(4, stream=stream)
    assert progress.live
    progress.update({"done": 1, "running": 2, "failed": 0, "total": 4})
    progress.close()
    assert "1/4 done, 2 running, 0 failed" in stream.getvalue()


def test_whole_batch_launchers_get_no_eta_or_running_count() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream=stream, eta=False)
    progress.job_finished({"job": 0, "status": "completed"}, {"done": 1, "running": 0, "failed": 0, "total": 4})
    progress.close()
    assert stream.getvalue().startswith("[sweep] job #0 completed | 1/4 done, 0 failed | elapsed 00:00\n")
    assert "ETA" not in stream.getvalue() and "running" not in stream.getvalue()


def test_output_while_the_live_line_is_shown_goes_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    handler = logging.StreamHandler(terminal)
    logger = logging.getLogger("grid_sweeper.test_live")
    logger.addHandler(handler)
    try:
        progress = Progress(2, stream=terminal)
        progress.update({"done": 0, "running": 1, "failed": 0, "total": 2})
        print("[job 0] hello", end="")  # a partial line waits for its end
        print(" world")
        logger.warning("a log line")
        progress.close()
        assert sys.stdout is terminal and handler.stream is terminal  # put back
    finally:
        logger.removeHandler(handler)
    raw = terminal.getvalue()
    assert "--:--[job" not in raw and "[sweep] 0/2 done, 1 running, 0 failed" in raw
    assert "\r\x1b[2K[job 0] hello world\n" in raw and "\r\x1b[2Ka log line\n" in raw
