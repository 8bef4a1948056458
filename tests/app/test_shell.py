"""The app shell: command line, workspace tree, layout memory, theme, shortcuts, screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from app_helpers import make_images, open_folder, screenshot, write_dataset
from lora_studio.models.workspace_model import PROBLEMS_ROLE

ROOT = Path(__file__).resolve().parents[2]


def test_app_module_never_imports_torch(tmp_path):
    code = ("import sys, os; os.environ['QT_QPA_PLATFORM']='offscreen'; os.environ['LORA_STUDIO_HOME']=%r\n"
            "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
            "import lora_studio.__main__, lora_studio.widgets.main_window as m; w = m.MainWindow()\n"
            "bad = [n for n in ('torch','diffusers','peft','transformers','accelerate') if n in sys.modules]\n"
            "print(bad)" % str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_help_runs():
    out = subprocess.run([sys.executable, "-m", "lora_studio", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--workspace" in out.stdout and "--demo" in out.stdout


def test_workspace_tree_counts_and_badges(qtbot, window, tmp_path):
    ws = tmp_path / "ws"
    write_dataset(ws / "datasets" / "good", "csv", 4)
    bad = ws / "datasets" / "bad"
    make_images(bad / "10_style", 2)
    (bad / "metadata.csv").write_text("filename,prompt\n../x.png,escape\n")
    (ws / "runs" / "old").mkdir(parents=True)
    with qtbot.waitSignal(window.datasetOpened, timeout=10_000):
        window.open_workspace(ws)
    model = window.tree.tree_model
    good = model.find_path(str(ws / "datasets" / "good"))
    bad_index = model.find_path(str(bad))
    assert good.isValid() and bad_index.isValid()
    assert good.siblingAtColumn(1).data() == "4"
    assert bad_index.siblingAtColumn(1).data().startswith("2 ⚠1")
    assert bad_index.data(PROBLEMS_ROLE) == 1 and good.data(PROBLEMS_ROLE) == 0
    assert not model.find_path(str(ws / "runs")).isValid()  # run folders are not datasets
    # the first dataset opened by itself; choosing another in the tree opens it
    with qtbot.waitSignal(window.datasetOpened, timeout=10_000):
        window.tree.clicked.emit(good)
    assert window.session.root == ws / "datasets" / "good"
    assert str(ws) in window.settings.recent_workspaces()


def test_layout_and_mode_are_restored(qtbot, tmp_path):
    from lora_studio.widgets.main_window import MainWindow
    first = MainWindow(poll_ms=0)
    qtbot.addWidget(first)
    first.show()
    first.docks["tags"].hide()
    first.set_grid_mode(1)
    first.close()
    second = MainWindow(poll_ms=0)
    qtbot.addWidget(second)
    second.show()
    assert not second.docks["tags"].isVisible()
    assert second.grid.mode() == 1
    second.close()


def test_empty_window_says_what_to_do(window):
    assert window.pages.currentWidget() is window.empty_state
    screenshot(window, "empty-window")


def test_shortcuts_for_frequent_actions(window):
    a = window.actions
    assert a.save.shortcut() == QKeySequence(QKeySequence.StandardKey.Save)
    assert a.bulk_edit.shortcut() == QKeySequence("Ctrl+B")
    assert a.icon_mode.shortcut() == QKeySequence("Ctrl+1")
    assert a.table_mode.shortcut() == QKeySequence("Ctrl+2")
    assert a.edit_caption.shortcut() == QKeySequence("F2")
    assert not window.undo_action.shortcut().isEmpty()


def test_keyboard_undo_and_mode_switch(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    window.session.set_captions({"img_000.png": "changed"}, "Edit caption of img_000.png")
    window.grid.active_view().setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.session.captions[0] == "a painting of a red fox, forest"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.grid.mode() == 1


def test_theme_follows_choice(qtbot, window):
    from PySide6.QtWidgets import QApplication
    from PySide6.QtGui import QPalette
    window.theme.set_theme("dark")
    assert QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness() < 80
    window.theme.set_theme("light")
    assert QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness() > 200


@pytest.fixture
def demo_dataset(tmp_path):
    demo = pytest.importorskip("trainer.demo_workspace")
    root = tmp_path / "demo"
    demo.create_demo_workspace(root, make_model=False)
    return root


def test_screenshots_of_main_views(qtbot, window, demo_dataset):
    with qtbot.waitSignal(window.datasetOpened, timeout=20_000):
        window.open_workspace(demo_dataset)
    window.session.set_captions({"shape_002.png": window.session.captions[2] + ", " + ", ".join(
        f"extra detail {i}" for i in range(30))}, "long")
    window.grid.select_source_row(2)
    qtbot.waitUntil(lambda: window.thumbnails.pending() == 0 and window.detail.viewer.has_image()
                    and len(window.model.info) == window.model.rowCount() and not window.status.progress.isVisible(),
                    timeout=20_000)
    qtbot.wait(100)
    assert window.detail.warning.isVisible()  # past 75 CLIP tokens
    screenshot(window, "main-icon-mode")
    cutoff = window.detail.highlighter.cutoff
    assert cutoff is not None and "extra detail" in window.detail.editor.toPlainText()[cutoff:]
    screenshot(window.docks["details"], "detail-pane")
    window.set_grid_mode(1)
    qtbot.wait(50)
    screenshot(window, "main-table-mode")
    window.theme.set_theme("dark")
    window.set_grid_mode(0)
    qtbot.wait(50)
    screenshot(window, "main-dark")
    window.theme.set_theme("light")


def test_demo_workspace_opens(qtbot, window, tmp_path):
    pytest.importorskip("trainer.demo_workspace")
    root = tmp_path / "demo-ws"
    with qtbot.waitSignal(window.datasetOpened, timeout=180_000):
        window.open_demo(root)
    assert window.session.root == root / "datasets" / "shapes"
    assert window.model.rowCount() >= 30
    assert (root / "configs" / "demo.yaml").exists()
    # The first captions a new user reads are English: "an orange triangle", never "a orange".
    captions = window.session.captions
    assert any(c.startswith("an orange ") for c in captions) and not any(c.startswith("a orange") for c in captions)


def test_main_opens_workspace_from_command_line(tmp_path):
    ws = tmp_path / "cli-ws"
    write_dataset(ws / "set", "txt", 3)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "lora_studio", "--workspace", str(ws), "--quit-after-open"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"opened {ws / 'set'}"
    # the workspace is remembered: started again without arguments, it reopens
    out = subprocess.run([sys.executable, "-m", "lora_studio", "--quit-after-open"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == f"opened {ws / 'set'}"


def test_detail_pane_zoom_and_fit(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    viewer = window.detail.viewer
    qtbot.waitUntil(viewer.has_image, timeout=20_000)
    fitted = viewer.transform().m11()
    viewer.zoom(1.25)
    assert viewer.transform().m11() == pytest.approx(fitted * 1.25)
    assert window.detail.zoom_label.text() == f"{fitted * 125:.0f}%"
    viewer.actual_size()
    assert viewer.transform().m11() == 1.0
    viewer.fit()
    assert viewer.transform().m11() == pytest.approx(fitted)


def test_a_workspace_scan_can_be_cancelled(window, tmp_path, qtbot):
    import threading

    from lora_studio.storage import workspace_scan
    # A slow share: every folder takes a moment, and the user gives up.
    for i in range(30):
        (tmp_path / "share" / f"folder{i:02d}").mkdir(parents=True)
    gate = threading.Event()
    original = workspace_scan.direct_images

    def slow(path):
        gate.wait(0.05)
        return original(path)

    workspace_scan.direct_images = slow
    try:
        window.open_workspace(tmp_path / "share")
        qtbot.waitUntil(window.status.cancel_scan.isVisible, timeout=20_000)
        window.status.cancel_scan.click()
        qtbot.waitUntil(lambda: not window.status.cancel_scan.isVisible(), timeout=10_000)
        assert "cancelled" in window.statusBar().currentMessage()
    finally:
        workspace_scan.direct_images = original


class SlowShare:
    """``os`` as the dataset opener sees it, with a share that hangs at one image until released.

    ``open_dataset`` stats every image; the stat of image number ``stall_at`` waits for
    ``release`` (as on a stalled network share), after the opener reported its progress.
    """

    def __init__(self, stall_at: int) -> None:
        import threading
        self.stall_at = stall_at
        self.calls = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    def stat(self, path, *args, **kwargs):
        self.calls += 1
        if self.calls == self.stall_at:
            self.stalled.set()
            self.release.wait(20)
        return os.stat(path, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(os, name)


@pytest.fixture
def slow_share(monkeypatch, tmp_path):
    """A folder of 1,200 images whose open stalls after 600 files; yields (folder, share)."""
    import gc

    from lora_studio.storage import dataset
    # Earlier tests' windows may still sit in reference cycles. Collected here, on the UI
    # thread: otherwise the open's allocations in its worker thread can trigger that
    # collection there, and Qt warns about timers touched from the wrong thread.
    gc.collect()
    folder = tmp_path / "ws" / "big"
    make_images(folder, 1)
    data = (folder / "img_000.png").read_bytes()
    for i in range(1, 1200):
        (folder / f"img_{i:04d}.png").write_bytes(data)
    share = SlowShare(stall_at=600)
    monkeypatch.setattr(dataset, "os", share)
    yield folder, share
    share.release.set()


def wait_for_stall(qtbot, window, share) -> None:
    qtbot.waitUntil(share.stalled.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: "512/1,200" in window.statusBar().currentMessage(), timeout=20_000)


def test_opening_a_dataset_shows_progress_and_can_be_cancelled(qtbot, window, dataset_factory, slow_share):
    from PySide6.QtWidgets import QMessageBox
    small = dataset_factory("csv", name="small")
    open_folder(qtbot, window, small)
    folder, share = slow_share
    opened: list[str] = []
    window.datasetOpened.connect(opened.append)
    window.open_dataset_folder(folder)
    wait_for_stall(qtbot, window, share)  # the open counts its way through the folder
    assert window.statusBar().currentMessage().startswith("Opening big… 512/1,200")
    assert window.status.cancel_open.isVisible()
    screenshot(window, "opening-with-cancel")
    window.status.cancel_open.click()
    assert not window.status.cancel_open.isVisible()
    assert window.statusBar().currentMessage() == "Opening big cancelled; small is still open"
    share.release.set()  # the share wakes up; the open notices it was cancelled and stops
    assert window.runner.pool.waitForDone(10_000)
    qtbot.wait(50)  # its (ignored) outcome is delivered
    assert share.calls < 1200  # it stopped early, not after reading everything
    assert window.session.root == small and window.model.rowCount() == 6
    assert opened == []
    assert "cancelled" in window.statusBar().currentMessage()
    assert not [box for box in window.findChildren(QMessageBox) if box.isVisible()]


def test_opening_another_dataset_cancels_the_first(qtbot, window, dataset_factory, slow_share):
    other = dataset_factory("txt", name="other", count=3)
    folder, share = slow_share
    window.open_dataset_folder(folder)
    wait_for_stall(qtbot, window, share)
    with qtbot.waitSignal(window.datasetOpened, timeout=10_000) as blocker:
        window.open_dataset_folder(other)  # the user changes their mind
    assert blocker.args == [str(other)]
    share.release.set()
    assert window.runner.pool.waitForDone(10_000)
    qtbot.wait(50)
    assert share.calls < 1200
    assert window.session.root == other and window.model.rowCount() == 3
    assert not window.status.cancel_open.isVisible()
