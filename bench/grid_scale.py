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
- peak_rss_mb: the app process's peak resident memory (target < 500 MB). Images are
  generated in a child process so they do not count.

The machine matters (these share 2 cores with other work); compare figures from one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(256, 256), (512, 384), (768, 1024), (1024, 1024), (1600, 1200), (2048, 1536), (4000, 3000), (3000, 4000)]
WORDS = ["painting", "portrait", "landscape", "woman", "man", "cat", "dog", "forest", "city", "night", "sunset",
         "red", "blue", "green", "detailed", "masterpiece", "sketch", "photo", "studio lighting", "smiling"]


def generate(folder: Path, count: int) -> None:
    """Write ``count`` JPEGs (a few distinct encodes per size, copied) and a metadata.csv."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    encoded: list[bytes] = []
    for w, h in SIZES:
        for variant in range(2):
            image = Image.new("RGB", (w, h), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            draw = ImageDraw.Draw(image)
            for _ in range(12):
                x, y = rng.randrange(w), rng.randrange(h)
                r = rng.randrange(max(8, w // 10), max(16, w // 3))
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            encoded.append(buffer.getvalue())
    lines = ["filename,prompt"]
    for i in range(count):
        name = f"img_{i:05d}.jpg"
        # Weighted towards small and medium images, as real datasets are.
        data = encoded[min(len(encoded) - 1, int(rng.random() ** 1.6 * len(encoded)))]
        (folder / name).write_bytes(data)
        tags = rng.sample(WORDS, 6)
        lines.append(f'{name},"{", ".join(tags)}"')
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


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
    from lora_studio.widgets.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow(autosave_ms=3_600_000, poll_ms=0)
    window.thumbnails.pool.setMaxThreadCount(threads)
    window.resize(1600, 1000)
    window.show()
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
    }
    window.close()
    return result


def main() -> int:
    """Generate the dataset (child process), then measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images instead of 10,000")
    parser.add_argument("--count", type=int, help="number of images")
    parser.add_argument("--threads", type=int, default=2, help="thumbnail decoder threads (default 2)")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    count = args.count or (1000 if args.quick else 10_000)
    if args.generate:
        generate(args.generate, count)
        return 0
    with tempfile.TemporaryDirectory(prefix="grid-scale-") as tmp:
        folder = Path(tmp) / "dataset"
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(folder), "--count", str(count)], check=True)
        generated = time.perf_counter() - t
        os.environ["LORA_STUDIO_HOME"] = str(Path(tmp) / "app-home")  # a cold thumbnail cache
        result = measure(folder, args.threads)
        result["generate_s"] = round(generated, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
