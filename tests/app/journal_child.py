"""Child process for the kill test: opens a dataset, types a caption, then waits to be killed.

Autosave is effectively off, so the only copy of the edit is the journal.
"""

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lora_studio.widgets.main_window import MainWindow

folder = Path(sys.argv[1])
app = QApplication([])
window = MainWindow(autosave_ms=3_600_000, poll_ms=0)
window.show()


def type_caption() -> None:
    window.grid.select_source_row(2)
    editor = window.detail.editor
    editor.setFocus()
    QTest.keyClicks(editor, "typed before the kill")
    # Wait past the detail pane's commit delay (300 ms), then say we are done.
    QTimer.singleShot(600, lambda: (print("EDITED", flush=True)))


window.datasetOpened.connect(lambda _p: QTimer.singleShot(100, type_caption))
window.open_dataset_folder(folder)
app.exec()
time.sleep(60)
