"""The bulk-edit dialog: operation, its arguments, the scope, and a live preview count."""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QRadioButton, QVBoxLayout)

from ..tags import BulkEdit, Operation

OPERATIONS = (
    (Operation.ADD_TAG, "Add a tag"),
    (Operation.REMOVE_TAG, "Remove a tag"),
    (Operation.PREPEND_TRIGGER, "Prepend a trigger word"),
    (Operation.REPLACE, "Find and replace"),
    (Operation.SORT_TAGS, "Sort tags (and remove duplicates)"),
    (Operation.DEDUPE_TAGS, "Remove duplicate tags"),
    (Operation.CLEAR, "Clear captions"),
)
SCOPES = ("all", "filtered", "selected")


def _short(text: str, limit: int = 90) -> str:
    """Escaped, shortened caption for the preview."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(text)


class BulkEditDialog(QDialog):
    """Asks for one bulk edit; ``preview(edit, scope) -> {row: (old, new)}`` drives the preview.

    ``operations`` are those offered (a text dataset's dialog offers find and replace alone),
    ``noun`` what is changed ("caption", "example").
    """

    def __init__(self, counts: dict[str, int], preview: Callable[[BulkEdit, str], dict[int, tuple[str, str]]],
                 operation: Operation = Operation.ADD_TAG, parent=None,
                 operations: tuple[tuple[Operation, str], ...] = OPERATIONS, noun: str = "caption") -> None:
        super().__init__(parent)
        self.noun = noun
        self.setWindowTitle(f"Bulk edit {noun}s" if len(operations) > 1 else f"{operations[0][1]} in {noun}s")
        self.setMinimumWidth(480)
        self.preview_fn = preview
        self.operation = QComboBox(self)
        for op, label in operations:
            self.operation.addItem(label, op)
        self.operation.setVisible(len(operations) > 1)
        self.text = QLineEdit(self)
        self.replacement = QLineEdit(self)
        self.regex = QCheckBox("Regular expression", self)
        self.whole_tag = QCheckBox("Whole tags only", self)
        self.case = QCheckBox("Match case", self)
        self.case.setChecked(True)
        self.text_label = QLabel("Tag:", self)
        self.replacement_label = QLabel("Replace with:", self)
        form = QFormLayout()
        form.addRow("Operation:" if len(operations) > 1 else "", self.operation)
        form.addRow(self.text_label, self.text)
        form.addRow(self.replacement_label, self.replacement)
        options = QHBoxLayout()
        for box in (self.regex, self.whole_tag, self.case):
            options.addWidget(box)
        options.addStretch(1)
        form.addRow("", options)

        scope_box = QGroupBox("Apply to", self)
        scope_layout = QHBoxLayout(scope_box)
        self.scope_group = QButtonGroup(self)
        self.scope_buttons: dict[str, QRadioButton] = {}
        for name in SCOPES:
            button = QRadioButton(f"{name.capitalize()} ({counts.get(name, 0):,})", scope_box)
            button.setEnabled(counts.get(name, 0) > 0)
            self.scope_group.addButton(button)
            self.scope_buttons[name] = button
            scope_layout.addWidget(button)
        default = "selected" if counts.get("selected", 0) > 1 else ("filtered" if counts.get("filtered", 0) != counts.get("all") else "all")
        self.scope_buttons[default].setChecked(True)

        self.preview_label = QLabel("", self)
        self.preview_label.setWordWrap(True)
        self.preview_label.setStyleSheet("font-weight: 600;")
        self.examples = QLabel("", self)
        self.examples.setObjectName("hint")
        self.examples.setTextFormat(Qt.TextFormat.RichText)
        self.examples.setWordWrap(True)
        self.examples.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # Room for three before/after examples, so the dialog does not jump while typing.
        self.examples.setMinimumHeight(self.examples.fontMetrics().lineSpacing() * 9)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Apply")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(scope_box)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.examples)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self, singleShot=True, interval=120)
        self._timer.timeout.connect(self.update_preview)
        for signal in (self.text.textChanged, self.replacement.textChanged, self.regex.toggled, self.whole_tag.toggled,
                       self.case.toggled, self.operation.currentIndexChanged, self.scope_group.buttonToggled):
            signal.connect(self._timer.start)
        self.operation.currentIndexChanged.connect(self._layout_for_operation)
        self.operation.setCurrentIndex([op for op, _ in operations].index(operation))
        self._layout_for_operation()
        self.update_preview()

    def _layout_for_operation(self) -> None:
        op = Operation(self.operation.currentData())
        needs_text = op in (Operation.ADD_TAG, Operation.REMOVE_TAG, Operation.PREPEND_TRIGGER, Operation.REPLACE)
        replace = op is Operation.REPLACE
        self.text_label.setText({Operation.PREPEND_TRIGGER: "Trigger word:", Operation.REPLACE: "Find:"}.get(op, "Tag:"))
        for widget in (self.text, self.text_label):
            widget.setVisible(needs_text)
        for widget in (self.replacement, self.replacement_label, self.regex, self.whole_tag, self.case):
            widget.setVisible(replace)

    def edit(self) -> BulkEdit:
        """The edit the controls describe."""
        return BulkEdit(self.operation.currentData(), self.text.text(), self.replacement.text(),
                        self.regex.isChecked(), self.whole_tag.isChecked(), self.case.isChecked())

    def scope(self) -> str:
        """'all', 'filtered' or 'selected'."""
        return next(name for name, button in self.scope_buttons.items() if button.isChecked())

    def update_preview(self) -> None:
        """Show how many captions the edit would change, or why it cannot run."""
        edit = self.edit()
        error = edit.validate()
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if error:
            self.preview_label.setText(error)
            self.examples.setText("")
            ok.setEnabled(False)
            return
        changes = self.preview_fn(edit, self.scope())
        changed = len(changes)
        self.preview_label.setText(f"Will change {changed:,} {self.noun}{'s' if changed != 1 else ''}.")
        lines = []
        for old, new in list(changes.values())[:3]:
            lines.append(f"<span style='text-decoration: line-through'>{_short(old) or '(empty)'}</span>"
                         f"<br>→ {_short(new) or '(empty)'}")
        self.examples.setText("<br><br>".join(lines))
        ok.setEnabled(changed > 0)
