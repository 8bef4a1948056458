"""Child process for the text kill test: opens a text dataset, types into an answer, then waits to be killed.

Autosave is effectively off, so the only copy of the edit is the journal.
"""

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lora_studio.widgets.main_window import MainWindow

path = Path(sys.argv[1])
app = QApplication([])
window = MainWindow(autosave_ms=3_600_000, poll_ms=0)
window.show()


def type_answer() -> None:
    window.text_page.table.select_source_row(0)
    editor = next(e for e in window.text_page.editor.editors if e.field.label == "Assistant 1")
    editor.setFocus()
    editor.moveCursor(QTextCursor.MoveOperation.End)
    QTest.keyClicks(editor, " Typed before the kill.")
    # Wait past the editor's commit delay (300 ms), then say we are done.
    QTimer.singleShot(600, lambda: print("EDITED", flush=True))


window.text.datasetOpened.connect(lambda _p: QTimer.singleShot(100, type_answer))
window.open_dataset_folder(path)
app.exec()
time.sleep(60)
