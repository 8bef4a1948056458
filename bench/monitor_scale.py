"""Monitor at scale: a run folder growing to 1,000,000 metric lines and a 100 MB log while the
Runs page shows it.

Reports, in one run:
- initial_load_s: opening the run with (points - updates x lines_per_update) lines already there;
- refresh_ms_mean / refresh_ms_p95 / refresh_ms_max: one update = the trainer appends a few
  metric lines and log lines, the page refreshes and repaints (target: mean under 16 ms);
- bytes_read_per_refresh vs bytes_written_per_refresh: the page reads only new bytes;
- peak_memory_mb: the process's peak resident memory.

Usage: python bench/monitor_scale.py [--quick] ; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def metric_line(step: int, start: float) -> str:
    loss = 0.2 + 0.8 * (1 + step) ** -0.3 + random.random() * 0.05
    return json.dumps({"step": step, "epoch": 1 + step // 1000, "loss": loss, "lr": 1e-4, "time": start + step * 0.1,
                       "samples_per_s": 12.5}) + "\n"


LOG_LINE = "2026-11-30 12:00:00,000 INFO step {step}: loss {loss:.4f}, lr 1.0e-04, 12.5 images/s " + "." * 20 + "\n"


def prefill(run: Path, points: int, log_bytes: int) -> None:
    """Write the run folder as it looks after `points` steps (in big chunks, quickly)."""
    run.mkdir(parents=True)
    start = time.time() - points * 0.1
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as handle:
        for begin in range(1, points + 1, 50_000):
            handle.write("".join(metric_line(s, start) for s in range(begin, min(points + 1, begin + 50_000))))
    line = LOG_LINE.format(step=1, loss=0.5)
    with open(run / "train.log", "w", encoding="utf-8") as handle:
        handle.write(line * (log_bytes // len(line)))
    (run / "events.jsonl").write_text("", encoding="utf-8")
    status = {"state": "training", "step": points, "total_steps": points * 2, "epoch": 1, "total_epochs": 2,
              "heartbeat": time.time(), "pid": os.getpid(), "host": os.uname().nodename, "eta_s": 100,
              "last_checkpoint": None, "error": None, "trainer_version": "bench", "started_at": start}
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 points and a 10 MB log")
    args = parser.parse_args()
    points, log_mb = (100_000, 10) if args.quick else (1_000_000, 100)
    updates, per_update = (200, 5) if args.quick else (500, 5)
    if os.environ.get("MONITOR_SCALE_POINTS"):  # for profiling at other sizes
        points = int(os.environ["MONITOR_SCALE_POINTS"])

    import lora_studio  # noqa: F401 - installs the PySide refcount guard first
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from lora_studio.monitor.monitor_page import MonitorPage
    from lora_studio.workers.tasks import TaskRunner
    from lora_studio.workers.thumbnails import ThumbnailLoader

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        run = workspace / "runs" / "big"
        first = points - updates * per_update
        prefill(run, first, log_mb * 2**20)
        page = MonitorPage(TaskRunner(), ThumbnailLoader(Path(tmp) / "thumbs"), refresh_ms=0, runs_refresh_ms=0)
        page.resize(1400, 860)
        page.show()
        app.processEvents()
        started = time.perf_counter()
        page.workspace = workspace
        page.show_run(run)
        series = page.plot.series["big"]
        while series.loading:  # the history loads in a worker; the UI stays live meanwhile
            app.processEvents()
            time.sleep(0.005)
        app.processEvents()
        initial = time.perf_counter() - started

        times, read, written = [], [], []
        step = first
        start = time.time() - first * 0.1
        with open(run / "metrics.jsonl", "a", encoding="utf-8") as metrics, \
                open(run / "train.log", "a", encoding="utf-8") as log:
            for _ in range(updates):
                lines = "".join(metric_line(s, start) for s in range(step + 1, step + 1 + per_update))
                log_lines = "".join(LOG_LINE.format(step=s, loss=0.5) for s in range(step + 1, step + 1 + per_update))
                step += per_update
                metrics.write(lines)
                metrics.flush()
                log.write(log_lines)
                log.flush()
                begin = time.perf_counter()
                page.refresh()
                page.repaint()
                app.processEvents()
                times.append(time.perf_counter() - begin)
                read.append(series.bytes_read + page.log_view.tail.bytes_read)
                written.append(len(lines.encode()) + len(log_lines.encode()))
        assert len(series) == points, (len(series), points)
        page.set_workspace(None)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ordered = sorted(times)
    result = {
        "points": points, "log_mb": log_mb, "updates": updates, "lines_per_update": per_update,
        "initial_load_s": round(initial, 2),
        "refresh_ms_mean": round(statistics.mean(times) * 1000, 2),
        "refresh_ms_p95": round(ordered[int(len(ordered) * 0.95)] * 1000, 2),
        "refresh_ms_max": round(ordered[-1] * 1000, 2),
        "bytes_read_per_refresh": round(statistics.mean(read)),
        "bytes_written_per_refresh": round(statistics.mean(written)),
        "peak_memory_mb": round(peak_mb),
    }
    print(f"{points:,} points, {log_mb} MB log: opened in {initial:.2f} s; refresh {result['refresh_ms_mean']} ms mean "
          f"({result['refresh_ms_p95']} ms p95); read {result['bytes_read_per_refresh']} B per refresh for "
          f"{result['bytes_written_per_refresh']} B written; peak memory {result['peak_memory_mb']} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
