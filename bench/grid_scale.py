"""How the caption grid scales: 10,000 images (mixed sizes up to 4000 px) with captions.

Run: ``QT_QPA_PLATFORM=offscreen python bench/grid_scale.py [--quick] [--count N]``.
The last line printed is one JSON object with the figures (seconds unless named _mb):

- open_to_first_paint_s: from asking to open the folder to the grid's first paint with rows
  (target < 1 s);
- visible_thumbnails_s: from asking to open until every card on screen shows its thumbnail;
- full_thumbnail_cache_s: from asking to open until the disk cache holds every thumbnail
  (the app prefetches in the background, on ``threads`` worker threads);
- replace_all_s / undo_replace_s: a find-and-replace over all captions and its undo,
  including the views' update (target < 0.2 s each);
- save_s: writing metadata.csv after that replace (atomic, fsynced);
- scroll_page_ms_mean / _p95 / _max: thumbnail mode, the grid scrolled from top to bottom
  one page at a time; each page's paint (the delegate reading the model, thumbnails from
  memory or a placeholder while they load) timed with a synchronous repaint;
- scroll_all_thumbnails_s: the same walk again, waiting on each page until all its cards
  show their thumbnails (read back from the disk cache: the memory cache holds ~1,100);
  null, with scroll_thumbnails_stuck_at_page, when a page's thumbnails never all showed
  (20 s); thumb_memory_*: the memory cache after the first walk, its own byte count
  against the real pixmaps;
- save_10k_txt_s: the same images as a kohya ``.txt`` sidecar dataset, "Prepend trigger"
  over all captions, then a save (each caption file replaced atomically; the batch flushed
  to disk with one ``os.sync`` before the renames, see ``trainer.fsutil.atomic_write_many``) timed from
  the Save to the app's "saved" signal; save_ui_max_stall_ms: the longest the UI thread's
  event loop was unresponsive meanwhile (a 5 ms QTimer's largest lateness), when that
  stall ended relative to "saved" (negative: during the writes), how many passed 50 ms,
  and save_gc_max_ms: the longest Python garbage collection meanwhile (it holds every
  thread, the UI's included);
- peak_rss_mb: the app process's peak resident memory (target < 500 MB). Images are
  generated in a child process (bench/grid_dataset.py) so they do not count.

The machine matters (these share 2 cores with other work); compare figures from one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
def wait_until(app, predicate, timeout: float) -> bool:
    """Process events until ``predicate()`` or timeout."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.002)
    return False


def measure(folder: Path, threads: int) -> dict:
    """Open the folder in the real main window and time each step."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from lora_studio.tags import BulkEdit, Operation
    from lora_studio.widgets.caption_grid import ICON_MODE
    from lora_studio.widgets.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow(autosave_ms=3_600_000, poll_ms=0)
    window.thumbnails.pool.setMaxThreadCount(threads)
    window.resize(1600, 1000)
    window.show()
    window.set_grid_mode(ICON_MODE)
    app.processEvents()
    view = window.grid.icon_view
    painted: dict[str, float] = {}

    class PaintSpy(QObject):
        def eventFilter(self, obj, event):  # noqa: N802
            if event.type() == QEvent.Type.Paint and window.model.rowCount() and "first" not in painted:
                painted["first"] = time.perf_counter()
            return False

    spy = PaintSpy()
    view.viewport().installEventFilter(spy)
    t0 = time.perf_counter()
    window.open_dataset_folder(folder)
    assert wait_until(app, lambda: "first" in painted, 60), "grid never painted"
    first_paint = painted["first"] - t0

    def visible_rows() -> list[int]:
        rect = view.viewport().rect()
        rows = []
        for r in range(window.grid.proxy.rowCount()):
            index = window.grid.proxy.index(r, 0)
            vr = view.visualRect(index)
            if vr.intersects(rect):
                rows.append(r)
            elif vr.top() > rect.bottom():
                break
        return rows

    def all_visible_have_thumbnails() -> bool:
        thumbs = window.thumbnails
        for r in visible_rows():
            entry = window.session.entries[window.grid.proxy.mapToSource(window.grid.proxy.index(r, 0)).row()]
            if str(entry.path) not in thumbs._memory:
                return False
        return True

    assert wait_until(app, all_visible_have_thumbnails, 120), "visible thumbnails never arrived"
    view.viewport().repaint()
    visible = time.perf_counter() - t0
    visible_count = len(visible_rows())
    count = len(window.session.entries)
    thumbs = window.thumbnails
    # Prefetch starts shortly after the first paint; done when every image went through it.
    assert wait_until(app, lambda: thumbs.decoded + thumbs.from_disk >= count and thumbs.pending() == 0, 3600), \
        "cache never finished"
    full_cache = time.perf_counter() - t0

    scroll = measure_scroll(app, window)

    session = window.session
    edit = BulkEdit(Operation.REPLACE, "painting", "oil painting")
    t = time.perf_counter()
    changed = window.run_bulk(edit, "all")
    app.processEvents()
    replace_s = time.perf_counter() - t
    t = time.perf_counter()
    session.undo_stack.undo()
    app.processEvents()
    undo_s = time.perf_counter() - t
    session.undo_stack.redo()
    app.processEvents()
    t = time.perf_counter()
    session.save(blocking=True)
    save_s = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "images": len(session.entries),
        "visible_cards": visible_count,
        "threads": threads,
        "open_to_first_paint_s": round(first_paint, 3),
        "visible_thumbnails_s": round(visible, 3),
        "full_thumbnail_cache_s": round(full_cache, 2),
        "thumbnails_decoded": window.thumbnails.decoded,
        "replace_all_s": round(replace_s, 3),
        "replace_changed": changed,
        "undo_replace_s": round(undo_s, 3),
        "save_s": round(save_s, 3),
        "peak_rss_mb": round(peak_mb, 1),
        **scroll,
        **measure_txt_save(app, window, folder.parent / "dataset-txt"),
    }
    window.close()
    return result


def rows_on_screen(view) -> list[int]:
    """Proxy rows whose cards intersect the viewport, found from the top-left card on."""
    rect = view.viewport().rect()
    model = view.model()
    first = view.indexAt(rect.topLeft())
    rows = []
    for r in range(first.row() if first.isValid() else 0, model.rowCount()):
        vr = view.visualRect(model.index(r, view.modelColumn()))
        if vr.top() > rect.bottom():
            break
        if vr.intersects(rect):
            rows.append(r)
    return rows


def measure_scroll(app, window) -> dict:
    """Scroll the thumbnail grid from top to bottom a page at a time: paint times, then thumbnails."""
    view = window.grid.icon_view
    proxy = window.grid.proxy
    entries = window.session.entries
    thumbs = window.thumbnails
    bar = view.verticalScrollBar()

    def shown(rows: list[int]) -> bool:
        """Every card in ``rows`` shows its thumbnail (or the badge of one that failed)."""
        keys = (str(entries[proxy.mapToSource(proxy.index(r, 0)).row()].path) for r in rows)
        return all(key in thumbs._memory or key in thumbs.failures for key in keys)

    # Pass 1: how long each page takes to paint. A synchronous repaint is what the user
    # waits for; the events in between deliver thumbnails that arrived, as they would.
    bar.setValue(0)
    app.processEvents()
    page_ms: list[float] = []
    while True:
        t = time.perf_counter()
        view.viewport().repaint()
        page_ms.append((time.perf_counter() - t) * 1000)
        app.processEvents()
        if bar.value() >= bar.maximum():
            break
        bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
    assert wait_until(app, lambda: thumbs.pending() == 0, 600), "thumbnail requests never finished"

    # What the memory cache holds after the walk: its own count of bytes against the real
    # pixmaps (a drift there shrinks the cache until thumbnails keep reloading).
    memory = {
        "thumb_memory_entries": len(thumbs._memory),
        "thumb_memory_counted_mb": round(thumbs._memory_used / 2**20, 1),
        "thumb_memory_actual_mb": round(sum(p.width() * p.height() * 4 for p in thumbs._memory.values()) / 2**20, 1),
    }

    # Pass 2: the same walk, each page waiting until every card on it has its thumbnail.
    bar.setValue(0)
    t0 = time.perf_counter()
    stuck = None
    page = 0
    while True:
        app.processEvents()
        if not wait_until(app, lambda: shown(rows_on_screen(view)), 20):
            stuck = page  # reported, not raised: the other figures are still worth having
            break
        if bar.value() >= bar.maximum():
            break
        bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
        page += 1
    scroll_all = time.perf_counter() - t0
    ordered = sorted(page_ms)
    return {
        "scroll_pages": len(page_ms),
        "scroll_cards_per_page": len(rows_on_screen(view)),
        "scroll_page_ms_mean": round(sum(page_ms) / len(page_ms), 2),
        "scroll_page_ms_p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "scroll_page_ms_max": round(ordered[-1], 2),
        "scroll_all_thumbnails_s": round(scroll_all, 2) if stuck is None else None,
        **({"scroll_thumbnails_stuck_at_page": stuck} if stuck is not None else {}),
        **memory,
    }


def measure_txt_save(app, window, twin: Path) -> dict:
    """Open the .txt twin, prepend a trigger word to every caption, save; watch the event loop."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    from lora_studio.tags import BulkEdit, Operation

    opened: list[str] = []
    checked: list[bool] = []
    window.datasetOpened.connect(opened.append)
    window.imageCheckDone.connect(lambda: checked.append(True))
    window.open_dataset_folder(twin)
    assert wait_until(app, lambda: bool(opened), 120), "txt dataset never opened"
    session = window.session
    assert session.format == "txt", session.format
    # Let the image check finish and drop the thumbnail prefetch of these (hard-linked, so
    # new to the cache) paths, so that the save is timed alone, as the csv save was.
    assert wait_until(app, lambda: bool(checked), 600), "image check never finished"
    thumbs = window.thumbnails
    with thumbs._lock:
        thumbs._background.clear()
    assert wait_until(app, lambda: thumbs.pending() == 0, 120)

    t = time.perf_counter()
    changed = window.run_bulk(BulkEdit(Operation.PREPEND_TRIGGER, "sks_style"), "all")
    app.processEvents()
    prepend_s = time.perf_counter() - t

    gaps: list[tuple[float, float]] = []  # (gap between ticks, when it ended)
    last = [0.0]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0], now))
        last[0] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(5)
    ticker.timeout.connect(tick)
    loop = QEventLoop()
    outcome: list[str] = []
    ends: list[float] = []

    def finished(message: str) -> None:
        ends.append(time.perf_counter())
        outcome.append(message)
        # Keep the ticker running a moment: the app's own work on completion (the slot
        # that emitted this) only shows up as a late tick after it.
        QTimer.singleShot(100, loop.quit)

    # Python's cyclic garbage collector stops every thread while it runs (in whichever
    # thread triggered it): record its pauses to tell them from the app's own work.
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_started[0])

    session.saved.connect(finished)
    session.saveFailed.connect(lambda m: finished("failed: " + m))
    QTimer.singleShot(1_800_000, loop.quit)  # a guard, never reached unless the save hangs
    gc.callbacks.append(on_gc)
    last[0] = time.perf_counter()
    ticker.start()
    t = time.perf_counter()
    window.save()  # as the user's Save: the app writes in a worker and reports back
    loop.exec()
    ticker.stop()
    gc.callbacks.remove(on_gc)
    end = ends[0] if ends else time.perf_counter()
    save_s = end - t
    worst, worst_at = max(gaps, default=(0.0, end))
    assert outcome and not outcome[0].startswith("failed"), outcome
    written = sum(1 for p in twin.glob("*.txt") if p.read_text(encoding="utf-8").startswith("sks_style"))
    return {
        "txt_prepend_all_s": round(prepend_s, 3),
        "txt_prepend_changed": changed,
        "save_10k_txt_s": round(save_s, 2),
        "save_txt_files_written": written,
        "save_ui_max_stall_ms": round(max(0.0, worst * 1000 - 5), 1),
        # When the worst stall ended, from the "saved" signal: about 0 means the UI
        # thread's own work on completion, negative means during the writes.
        "save_ui_max_stall_ended_at_s": round(worst_at - end, 3),
        "save_ui_stalls_over_50ms": sum(1 for gap, _ in gaps if gap > 0.055),
        "save_gc_max_ms": round(max(gc_pauses, default=0.0) * 1000, 1),
        "save_ui_ticks": len(gaps),
    }


def main() -> int:
    """Generate the dataset (child process), then measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images instead of 10,000")
    parser.add_argument("--count", type=int, help="number of images")
    parser.add_argument("--threads", type=int, default=2, help="thumbnail decoder threads (default 2)")
    args = parser.parse_args()
    count = args.count or (1000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="grid-scale-") as tmp:
        folder = Path(tmp) / "dataset"
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bench" / "grid_dataset.py"), str(folder), str(count)], check=True)
        generated = time.perf_counter() - t
        os.environ["LORA_STUDIO_HOME"] = str(Path(tmp) / "app-home")  # a cold thumbnail cache
        result = measure(folder, args.threads)
        result["generate_s"] = round(generated, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
