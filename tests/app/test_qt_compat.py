"""The app survives PySide's unbalanced None references (tens of thousands of Qt calls)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'
import lora_studio  # installs the guard
from PySide6.QtCore import QObject
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QApplication
app = QApplication([])
obj = QObject()
model = QStandardItemModel(); model.appendRow(QStandardItem('a'))
for _ in range(200_000):
    obj.setObjectName('x')                      # a void method
    model.data(model.index(0, 0), 0x0100 + 9)   # an invalid QVariant
print('alive')
"""


def test_many_void_calls_do_not_crash():
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "alive" in out.stdout, out.stderr[-2000:]
