"""Thumbnails (reduced, cached, bounded), adding images by drop and deleting to the trash."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app_helpers import make_images, open_folder
from lora_studio.storage.file_ops import copy_into
from lora_studio.workers.thumbnails import ThumbnailLoader


def load(qtbot, loader, path: Path):
    st = path.stat()
    qtbot.waitUntil(lambda: loader.pixmap(path, st.st_size, st.st_mtime_ns) is not None or str(path) in loader.failures,
                    timeout=10_000)
    assert str(path) not in loader.failures, loader.failures
    return loader.pixmap(path, st.st_size, st.st_mtime_ns)


def test_thumbnail_is_reduced_cached_and_follows_mtime(qtbot, tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), "navy").save(big, quality=80)
    cache = tmp_path / "cache"
    loader = ThumbnailLoader(cache, px=192)
    pixmap = load(qtbot, loader, big)
    assert (pixmap.width(), pixmap.height()) == (192, 144)
    assert loader.decoded == 1
    # a second app session reads the disk cache instead of decoding again
    second = ThumbnailLoader(cache, px=192)
    load(qtbot, second, big)
    assert second.decoded == 0 and second.from_disk == 1
    # an edited image (new mtime) gets a new thumbnail
    Image.new("RGB", (300, 300), "red").save(big, "JPEG")
    os.utime(big, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = ThumbnailLoader(cache, px=192)
    pixmap = load(qtbot, third, big)
    assert third.decoded == 1 and pixmap.width() == 192 and pixmap.height() == 192
    for item in (loader, second, third):
        item.stop()


def test_memory_cache_is_bounded(qtbot, tmp_path):
    make_images(tmp_path, 12, size=(400, 400))
    loader = ThumbnailLoader(tmp_path / "cache", px=100, memory_bytes=100 * 100 * 4 * 5)
    for path in sorted(tmp_path.glob("*.png")):
        load(qtbot, loader, path)
    assert len(loader._memory) <= 5
    loader.stop()


def test_a_thumbnail_delivered_twice_is_counted_once(qtbot, tmp_path):
    """A card asking again while its thumbnail is on its way gets it twice; the budget must
    not shrink for it, or after a long scroll the cache holds almost nothing (found by
    bench/grid_scale.py: 128 MB counted, 0.1 MB held)."""
    make_images(tmp_path, 6, size=(400, 400))
    loader = ThumbnailLoader(tmp_path / "cache", px=100, memory_bytes=100 * 100 * 4 * 5)
    paths = sorted(tmp_path.glob("*.png"))
    first = load(qtbot, loader, paths[0])
    for _ in range(20):
        loader.signals.ready.emit(str(paths[0]), first.toImage())  # the same thumbnail again
    for path in paths[1:5]:
        load(qtbot, loader, path)
    # Five thumbnails fit the budget: all are still in memory, none was evicted.
    assert all(loader.pixmap(p, p.stat().st_size, p.stat().st_mtime_ns) is not None for p in paths[:5])
    loader.stop()


def test_drop_copies_images_in_and_trash_removes(qtbot, window, dataset_factory, tmp_path):
    folder = dataset_factory("txt")
    open_folder(qtbot, window, folder)
    outside = tmp_path / "outside"
    make_images(outside, 2, start=40)
    (outside / "readme.md").write_text("not an image")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in sorted(outside.iterdir())])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.model.rowCount() == 8, timeout=20_000)
    assert (folder / "img_040.png").exists() and not (folder / "readme.md").exists()
    assert (outside / "img_040.png").exists()  # copied, not moved

    window.grid.select_source_row(0)
    trash_home = tmp_path / "xdg"
    os.environ["XDG_DATA_HOME"] = str(trash_home)
    try:
        window.files.trash_selected()
    finally:
        del os.environ["XDG_DATA_HOME"]
    if not (folder / "img_000.png").exists():
        assert window.model.rowCount() == 7
        assert not (folder / "img_000.txt").exists()  # its caption went along
    else:  # no trash on this platform: the app says so instead of deleting
        assert "could not be moved to the trash" in window.status.last_error


def test_a_copy_that_fails_midway_leaves_nothing_in_the_folder(tmp_path):
    """A language model's adapter folder copied out (Copy to… on the Runs page's Files tab) with a file
    that cannot be read: the copy fails, and neither the folder nor a hidden partial copy is left."""
    adapter, out = tmp_path / "run" / "adapter", tmp_path / "out"
    adapter.mkdir(parents=True)
    out.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"w" * 4096)
    (adapter / "tokenizer.json").symlink_to(tmp_path / "gone.json")  # points at nothing: reading it fails
    with pytest.raises(shutil.Error):
        copy_into(out, adapter, name="chat-adapter")
    assert list(out.iterdir()) == []
    (adapter / "tokenizer.json").unlink()
    assert copy_into(out, adapter, name="chat-adapter") == out / "chat-adapter"
    assert (out / "chat-adapter" / "adapter_model.safetensors").read_bytes() == b"w" * 4096
    assert copy_into(out, adapter, name="chat-adapter") == out / "chat-adapter-1"  # a folder numbers as a whole
