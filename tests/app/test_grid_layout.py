"""The icon grid's cards fill the width at any window size and thumbnail zoom."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from app_helpers import make_images, new_main_window, open_folder, screenshot
from lora_studio.widgets.grid_delegate import MARGIN, cell_width


def row_layout(view) -> tuple[int, int, int]:
    """(cards in the first row, gap between the last card and the viewport's right edge, card width)."""
    model = view.model()
    rects = [view.visualRect(model.index(r, view.modelColumn())) for r in range(model.rowCount())]
    first_row = [r for r in rects if r.top() == rects[0].top()]
    return len(first_row), view.viewport().width() - (first_row[-1].right() + 1), first_row[0].width()


def test_cards_fill_the_width_at_two_window_sizes(qtbot, window, tmp_path):
    folder = tmp_path / "ws" / "many"
    make_images(folder, 60)
    open_folder(qtbot, window, folder)
    view = window.grid.icon_view
    qtbot.waitUntil(lambda: window.thumbnails.pending() == 0, timeout=20_000)
    seen = {}
    for width in (1400, 1111):
        window.resize(width, 860)
        qtbot.waitUntil(lambda: view.verticalScrollBar().isVisible(), timeout=20_000)
        qtbot.wait(50)  # Qt lays items out on a zero timer after the resize
        columns, gap, card = row_layout(view)
        seen[width] = (columns, card)
        # No empty strip: what is left at the right is less than the gap between two cards.
        assert 0 <= gap < 2 * MARGIN, (width, columns, gap, card)
        assert abs(card - cell_width(view.thumb_size())) <= cell_width(view.thumb_size()) / 4  # about as asked
        assert view.columns() == columns
        screenshot(window, f"grid-fill-{width}")
    assert seen[1400][0] > seen[1111][0]  # the narrower window shows fewer columns, not a strip


def test_thumbnail_zoom_keeps_the_width_filled(qtbot, window, tmp_path):
    folder = tmp_path / "ws" / "zoom"
    make_images(folder, 40)
    open_folder(qtbot, window, folder)
    view = window.grid.icon_view
    qtbot.waitUntil(lambda: view.verticalScrollBar().isVisible(), timeout=20_000)
    before, _, small_card = row_layout(view)
    pos = QPointF(view.viewport().rect().center())
    event = QWheelEvent(pos, view.viewport().mapToGlobal(pos), QPoint(), QPoint(0, 120 * 3),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    for _ in range(3):  # Ctrl+wheel up: bigger thumbnails
        view.wheelEvent(event)
    qtbot.wait(50)
    after, gap, big_card = row_layout(view)
    assert view.thumb_size() > 168
    assert big_card > small_card and after < before
    assert 0 <= gap < 2 * MARGIN
    screenshot(window, "grid-zoomed")
    view.zoom(-20)  # far out: clamped to the smallest size, still no strip
    qtbot.wait(50)
    columns, gap, _ = row_layout(view)
    assert columns > before and 0 <= gap < 2 * MARGIN


def test_thumbnail_size_is_kept_for_the_next_session(qtbot, window):
    window.grid.icon_view.zoom(2)
    chosen = window.grid.icon_view.thumb_size()
    window.close()
    again = new_main_window(qtbot)  # the same app home: the next start
    assert again.grid.icon_view.thumb_size() == chosen
    again.close()
