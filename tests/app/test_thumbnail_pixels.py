"""What the grid and the detail view show is what the trainer trains on (issue 14, point 6).

Each odd image kind is decoded by the app (thumbnail loader, detail view) and by the
trainer's ``open_rgb``; the colours a person sees must be the ones the model gets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtGui import QImage

from app_helpers import open_folder, screenshot
from lora_studio.models.roles import THUMB_ROLE
from lora_studio.widgets.image_viewer import ImageViewer
from lora_studio.workers.tasks import TaskRunner
from lora_studio.workers.thumbnails import ThumbnailLoader
from trainer.images import open_rgb

SIZE = (800, 600)  # big enough that the JPEG decoder downscales (draft) for a 96 px thumbnail
THUMB = 96
RED, BLUE = (220, 30, 30), (30, 30, 220)
# Sample points as fractions of the thumbnail, away from the edges and the half boundaries.
POINTS = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
TOLERANCE = 12  # JPEG and resampling differences; a wrong conversion is off by 100 or more


def _halves(mode: str, left, right, size=SIZE) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def grey_16bit(folder: Path) -> Path:
    path = folder / "grey16.png"
    Image.new("I;16", SIZE, 32768).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "I;16"  # really a 16-bit file, not one Pillow made 8-bit
    return path


def cmyk_jpeg(folder: Path) -> Path:
    path = folder / "cmyk.jpg"
    _halves("CMYK", (0, 255, 255, 0), (255, 255, 0, 0)).save(path, quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    return path


def palette_png(folder: Path) -> Path:
    """Left half transparent (palette entry 0), right half green."""
    path = folder / "palette.png"
    image = _halves("P", 0, 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    image.save(path, transparency=0)
    return path


def rgba_png(folder: Path) -> Path:
    """Left half fully transparent (black underneath, so a lost alpha shows), right half blue."""
    path = folder / "rgba.png"
    _halves("RGBA", (0, 0, 0, 0), (*BLUE, 255)).save(path)
    return path


def rotated_jpeg(folder: Path) -> Path:
    """Stored left red, right blue, with EXIF orientation 6: upright it is red on top."""
    path = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    _halves("RGB", RED, BLUE).save(path, quality=95, exif=exif)
    return path


MAKERS = [grey_16bit, cmyk_jpeg, palette_png, rgba_png, rotated_jpeg]


def colours(image: QImage) -> list[tuple[int, int, int]]:
    """The RGB colours of ``image`` at POINTS."""
    found = []
    for fx, fy in POINTS:
        colour = image.pixelColor(int(fx * image.width()), int(fy * image.height()))
        found.append((colour.red(), colour.green(), colour.blue()))
    return found


def trainer_colours(path: Path, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """The trainer's converted image, resized to ``size``, at POINTS."""
    reference = open_rgb(path).resize(size, Image.Resampling.BILINEAR)
    return [reference.getpixel((int(fx * size[0]), int(fy * size[1]))) for fx, fy in POINTS]


def assert_same_colours(shown: list, trained: list) -> None:
    for point, seen, wanted in zip(POINTS, shown, trained):
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(seen, wanted)), (
            f"at {point} the app shows {seen}, the trainer sees {wanted}")


def thumbnail_of(qtbot, cache: Path, path: Path) -> QImage:
    """Ask a fresh loader as a grid card does and wait for its ``ready`` (or ``failed``) signal."""
    results: dict[str, object] = {}
    loader = ThumbnailLoader(cache, px=THUMB)
    try:
        loader.signals.ready.connect(lambda key, image: results.setdefault(key, image))
        loader.signals.failed.connect(lambda key, reason: results.setdefault(key, reason))
        st = path.stat()
        assert loader.pixmap(path, st.st_size, st.st_mtime_ns) is None  # not cached: decoded now
        qtbot.waitUntil(lambda: str(path) in results, timeout=10_000)
    finally:
        loader.stop()
    image = results[str(path)]
    assert isinstance(image, QImage), f"thumbnail failed: {image}"
    return image


@pytest.mark.parametrize("make", MAKERS, ids=lambda make: make.__name__)
def test_thumbnail_shows_the_colours_the_trainer_trains_on(qtbot, tmp_path, make):
    path = make(tmp_path)
    image = thumbnail_of(qtbot, tmp_path / "cache", path)
    trained = open_rgb(path)
    expected = trained.copy()
    expected.thumbnail((THUMB, THUMB))
    assert (image.width(), image.height()) == expected.size  # same shape: rotation applied
    assert_same_colours(colours(image), trainer_colours(path, (image.width(), image.height())))


def test_16bit_grey_thumbnail_is_mid_grey_not_white(qtbot, tmp_path):
    image = thumbnail_of(qtbot, tmp_path / "cache", grey_16bit(tmp_path))
    for r, g, b in colours(image):
        assert 124 <= r <= 132 and r == g == b, (r, g, b)  # 32768 / 257 = 127.5


def test_rotated_jpeg_thumbnail_is_upright(qtbot, tmp_path):
    image = thumbnail_of(qtbot, tmp_path / "cache", rotated_jpeg(tmp_path))
    top_left, top_right, bottom_left, bottom_right = colours(image)
    for seen, wanted in ((top_left, RED), (top_right, RED), (bottom_left, BLUE), (bottom_right, BLUE)):
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(seen, wanted)), (seen, wanted)


def test_detail_view_shows_the_16bit_image_as_the_trainer_sees_it(qtbot, tmp_path):
    path = grey_16bit(tmp_path)
    runner = TaskRunner()
    viewer = ImageViewer(runner)
    qtbot.addWidget(viewer)
    viewer.show_image(path)
    qtbot.waitUntil(lambda: viewer.has_image() or bool(viewer.message), timeout=10_000)
    assert viewer.has_image(), viewer.message
    image = viewer.item.pixmap().toImage()
    assert_same_colours(colours(image), trainer_colours(path, (image.width(), image.height())))
    assert runner.pool.waitForDone(10_000)


def test_grid_shows_16bit_and_other_odd_images_as_trained(qtbot, window, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    names = {make(folder).name for make in MAKERS}
    open_folder(qtbot, window, folder)
    session = window.model.session
    rows = {entry.rel: row for row, entry in enumerate(session.entries)}
    assert set(rows) == names

    def card(rel: str):
        return window.model.data(window.model.index(rows[rel], 0), THUMB_ROLE)

    def settled(rel: str) -> bool:
        return card(rel) is not None or str(folder / rel) in window.thumbnails.failures

    qtbot.waitUntil(lambda: all(settled(rel) for rel in rows), timeout=20_000)
    assert not window.thumbnails.failures
    qtbot.waitUntil(lambda: window.thumbnails.pending() == 0, timeout=10_000)
    grey = card("grey16.png").toImage()
    assert_same_colours(colours(grey), trainer_colours(folder / "grey16.png", (grey.width(), grey.height())))
    screenshot(window, "grid_16bit")
