"""One editor widget per option type of the trainer's schema.

Every editor shows what the schema says (bounds, choices with their descriptions, help on
hover) and nothing of its own. `value()` returns what the user entered in the option's
type; text that does not parse is returned as text, so the trainer's validator (not the
widget) says what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLineEdit, QPlainTextEdit,
                               QPushButton, QSpinBox, QWidget)

from trainer.config.schema import Option


def option_tooltip(option: Option) -> str:
    """Help, bounds, choices and default of an option, as rich text for a tooltip."""
    parts = [f"<b>{option.name}</b><br>{option.help}"]
    if option.minimum is not None or option.maximum is not None:
        low = "" if option.minimum is None else f"{'>' if option.exclusive_minimum else '≥'} {option.minimum:g}"
        high = "" if option.maximum is None else f"{'<' if option.exclusive_maximum else '≤'} {option.maximum:g}"
        parts.append("Allowed: " + ", ".join(p for p in (low, high) if p))
    for choice in option.choices:
        parts.append(f"<b>{choice.value}</b>: {choice.description}")
    default = "(required)" if option.required else ("empty" if option.default in (None, [], "") else option.default)
    parts.append(f"Default: {default}")
    return "<br>".join(parts)


def format_number(value: float) -> str:
    """The shortest text that reads back as the same float (0.0001, 1e-05, 0.03515625)."""
    return repr(float(value))


class OptionEditor(QWidget):
    """Base of the editors: a value in the option's type and a `changed` signal."""

    changed = Signal()

    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.option = option
        self.setToolTip(option_tooltip(option))
        self.setObjectName(f"editor_{option.name}")

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class _Layout(OptionEditor):
    def _row(self, *widgets: QWidget) -> None:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        for widget in widgets:
            layout.addWidget(widget, 1 if widget is widgets[0] else 0)


class IntEditor(_Layout):
    """A spin box within the schema's bounds; nullable options have an "empty" lowest value."""

    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.spin = QSpinBox(self)
        low = int(option.minimum) if option.minimum is not None else -2**31 + 1
        high = int(min(option.maximum, 2**31 - 1)) if option.maximum is not None else 2**31 - 1
        if option.nullable:
            low -= 1
            self.spin.setSpecialValueText("not set")
        self.spin.setRange(low, high)
        self.spin.setAccelerated(True)
        self.spin.valueChanged.connect(self.changed)
        self._row(self.spin)

    def value(self) -> int | None:
        if self.option.nullable and self.spin.value() == self.spin.minimum():
            return None
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        self.spin.blockSignals(True)
        if value is None:
            self.spin.setValue(self.spin.minimum())
        else:
            try:
                self.spin.setValue(int(value))
            except (TypeError, ValueError):
                pass
        self.spin.blockSignals(False)


class TextEditor(_Layout):
    """A line edit for str and float options (floats in scientific notation when small)."""

    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.line = QLineEdit(self)
        if option.nullable:
            self.line.setPlaceholderText("not set")
        elif option.type == "float":
            self.line.setPlaceholderText("a number, e.g. 1e-4")
        self.line.textChanged.connect(self.changed)
        self._row(self.line)

    def value(self) -> Any:
        text = self.line.text().strip()
        if not text and (self.option.nullable or self.option.default is None):
            return None
        if self.option.type == "float":
            try:
                return float(text)
            except ValueError:
                return text  # the validator explains what is wrong with it
        return self.line.text()

    def set_value(self, value: Any) -> None:
        self.line.blockSignals(True)
        if value is None:
            self.line.setText("")
        elif self.option.type == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            self.line.setText(format_number(float(value)))
        else:
            self.line.setText(str(value))
        self.line.blockSignals(False)


class PathEditor(TextEditor):
    """A path with a Browse button that knows files from folders; keeps paths relative."""

    def __init__(self, option: Option, base_dir: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.base_dir = base_dir
        self.line.setPlaceholderText("relative to the config's folder, or absolute")
        browse = QPushButton("Browse…", self)
        browse.setObjectName(f"browse_{option.name}")
        browse.clicked.connect(self._browse)
        self.layout().addWidget(browse)

    def _browse(self) -> None:
        base = self.base_dir()
        start = str(base / self.line.text()) if base and self.line.text() else str(base or Path.home())
        if self.option.path_kind == "dir":
            chosen = QFileDialog.getExistingDirectory(self, self.option.name, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.option.name, start)
        if chosen:
            self.line.setText(relative_to(Path(chosen), base))


def relative_to(path: Path, base: Path | None, *, allow_parent: bool = False) -> str:
    """``path`` relative to ``base`` when it lies inside it (configs then move with the workspace);
    with ``allow_parent`` also through ``..`` (a config in configs/ naming models/...). Else absolute."""
    if base is not None:
        try:
            if allow_parent:
                return Path(os.path.relpath(path, base)).as_posix()
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:  # not inside base, or on another drive (Windows)
            pass
    return str(path)


class BoolEditor(_Layout):
    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.box = QCheckBox(self)
        self.box.toggled.connect(self.changed)
        self._row(self.box)

    def value(self) -> bool:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(value))
        self.box.blockSignals(False)


class ChoiceEditor(_Layout):
    """A combo box; each choice carries its description as a tooltip and in the list."""

    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.combo = QComboBox(self)
        for index, choice in enumerate(option.choices):
            self.combo.addItem(f"{choice.value} — {choice.description}", choice.value)
            self.combo.setItemData(index, choice.description, 3)  # Qt.ToolTipRole
        self.combo.setMinimumContentsLength(24)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.currentIndexChanged.connect(self.changed)
        self._row(self.combo)

    def value(self) -> str:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = next((i for i, c in enumerate(self.option.choices) if str(value).lower() == c.value.lower()), -1)
        self.combo.blockSignals(True)
        if index >= 0:
            self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)


class ListEditor(_Layout):
    """One entry per line (sample prompts)."""

    def __init__(self, option: Option, parent: QWidget | None = None) -> None:
        super().__init__(option, parent)
        self.text = QPlainTextEdit(self)
        self.text.setPlaceholderText("one per line")
        self.text.setFixedHeight(72)
        self.text.setTabChangesFocus(True)
        self.text.textChanged.connect(self.changed)
        self._row(self.text)

    def value(self) -> list[str]:
        return [line.strip() for line in self.text.toPlainText().splitlines() if line.strip()]

    def set_value(self, value: Any) -> None:
        self.text.blockSignals(True)
        self.text.setPlainText("\n".join(str(v) for v in (value or [])))
        self.text.blockSignals(False)


def make_editor(option: Option, base_dir: Callable[[], Path | None], parent: QWidget | None = None) -> OptionEditor:
    """The editor for ``option``'s type."""
    if option.type == "int":
        return IntEditor(option, parent)
    if option.type == "bool":
        return BoolEditor(option, parent)
    if option.type == "choice":
        return ChoiceEditor(option, parent)
    if option.type == "str_list":
        return ListEditor(option, parent)
    if option.type == "path":
        return PathEditor(option, base_dir, parent)
    return TextEditor(option, parent)
