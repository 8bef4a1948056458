"""The settings form: every option of the trainer's schema, grouped, searchable, with an
"advanced" toggle, per-field reset, a mark on fields that differ from the preset, the
validator's messages shown on the field they concern, and only the options the base model's
family uses (SDXL has no clip skip; SD has no second text encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QScrollArea,
                               QToolButton, QVBoxLayout, QWidget)

from trainer.config.schema import GROUPS, OPTIONS, Option, defaults
from trainer.model_family import FAMILY_OPTIONS, SD, Detection, FamilySpec

from .base_model_editor import BaseModelEditor
from .model_finder import FoundModel
from .option_editors import OptionEditor, make_editor
from .presets import differing_options


_ACRONYMS = {"lora": "LoRA", "lr": "LR", "snr": "SNR", "reso": "resolution", "n": "N", "clip": "CLIP", "l": "L", "g": "G",
             "ae": "AE (VAE)", "t5": "T5", "dora": "DoRA", "rslora": "rsLoRA", "len": "length", "val": "validation",
             "mlp": "MLP", "llm": "LLM", "ema": "EMA", "nan": "NaN", "tf32": "TF32", "cudnn": "cuDNN", "lokr": "LoKr",
             "loha": "LoHa"}


def option_label(option: Option) -> str:
    """`learning_rate` -> `Learning rate`, `lora_rank` -> `LoRA rank` (the schema's name, readable)."""
    words = [_ACRONYMS.get(word, word) for word in option.name.split("_")]
    if not any(c.isupper() for c in words[0]):  # an acronym keeps its own case (cuDNN)
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


class OptionRow(QWidget):
    """An editor with its reset button and the place for its error message."""

    def __init__(self, editor: OptionEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.reset = QToolButton(self)
        self.reset.setText("↺")
        self.reset.setAutoRaise(True)
        self.reset.setToolTip("Reset to the preset's value")
        self.reset.setObjectName(f"reset_{editor.option.name}")
        self.error = QLabel(self)
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.error.setStyleSheet("color: #d0453b;")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(editor, 1)
        top.addWidget(self.reset)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.error)

    def show_problem(self, message: str | None, severity: str = "error") -> None:
        """Show the validator's message under the field (None clears it)."""
        self.error.setVisible(bool(message))
        self.error.setText(message or "")
        self.error.setStyleSheet("color: #d0453b;" if severity == "error" else "color: #b7791f;")
        self.editor.setProperty("problem", severity if message else "")
        self.editor.setStyleSheet("QLineEdit, QSpinBox, QComboBox, QPlainTextEdit { border: 1px solid %s; }"
                                  % ("#d0453b" if severity == "error" else "#b7791f") if message else "")


class TrainingForm(QWidget):
    """Editors for every option; `valuesChanged` after each edit by the user."""

    valuesChanged = Signal()

    def __init__(self, base_dir: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingForm")
        self.rows: dict[str, OptionRow] = {}
        self.labels: dict[str, QLabel] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.baseline: dict[str, Any] = defaults()
        self.family: FamilySpec = SD  # until a base model says otherwise: the schema defaults' family

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Find an option by name or help text…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_visibility)
        self.show_advanced = QCheckBox("Show advanced options", self)
        self.show_advanced.toggled.connect(self._apply_visibility)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(self.show_advanced)

        body = QWidget(self)
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 8, 0)
        for group in GROUPS:
            box = QGroupBox(group, body)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.groups[group] = box
            body_layout.addWidget(box)
            for option in (o for o in OPTIONS if o.group == group):
                editor = (BaseModelEditor(option, base_dir, box) if option.name == "base_model"
                          else make_editor(option, base_dir, box))
                row = OptionRow(editor, box)
                label = QLabel(option_label(option) + (" *" if option.required else ""), box)
                label.setMinimumWidth(self._label_width())
                label.setToolTip(editor.toolTip())
                label.setBuddy(editor)
                form.addRow(label, row)
                self.rows[option.name] = row
                self.labels[option.name] = label
                editor.changed.connect(self._edited)
                row.reset.clicked.connect(lambda _=False, name=option.name: self.reset_option(name))
        body_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        self.scroll = scroll

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)
        self._apply_visibility()

    # -- values ------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every option's current value, in schema order."""
        return {name: row.editor.value() for name, row in self.rows.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Show ``values`` (missing options get their defaults) without emitting valuesChanged."""
        full = {**defaults(), **values}
        for name, row in self.rows.items():
            row.editor.set_value(full[name])
        self._mark_differences()
        self._apply_visibility()

    def set_baseline(self, values: dict[str, Any]) -> None:
        """The preset the form compares against (reset buttons go back to it)."""
        self.baseline = {**defaults(), **values}
        self._mark_differences()

    def reset_option(self, name: str) -> None:
        """Put one option back to the preset's value."""
        self.rows[name].editor.set_value(self.baseline[name])
        self._edited()

    def differences(self) -> dict[str, tuple[Any, Any]]:
        """Options whose value differs from the preset: name -> (preset value, current value).

        A run's own options (paths, the LoRA's name) are left out: presets never set them.
        """
        return differing_options(self.values(), self.baseline)

    # -- the model family --------------------------------------------------------------
    def set_family(self, detection: Detection | None) -> None:
        """Show the base model's family on its field and only the options that family uses."""
        self.base_model_editor.set_family(detection)
        family = detection.spec if detection is not None else SD
        if family is not self.family:
            self.family = family
            self._apply_visibility()

    def set_models(self, models: list[FoundModel]) -> None:
        """The workspace's base models, for the base_model field's menu."""
        self.base_model_editor.set_models(models)

    @property
    def base_model_editor(self) -> BaseModelEditor:
        """The base_model field's editor."""
        editor = self.rows["base_model"].editor
        assert isinstance(editor, BaseModelEditor)
        return editor

    def uses(self, name: str) -> bool:
        """Whether the current family uses option ``name`` (options of other families are hidden)."""
        return name not in FAMILY_OPTIONS or name in self.family.own_options

    # -- problems ----------------------------------------------------------------------
    def show_problems(self, problems: list[Any]) -> None:
        """Mark the fields the validator complained about (problems with `.option`)."""
        by_option: dict[str, Any] = {}
        for problem in problems:
            if problem.option in self.rows and (problem.option not in by_option or problem.severity == "error"):
                by_option[problem.option] = problem
        for name, row in self.rows.items():
            problem = by_option.get(name)
            row.show_problem(f"{problem.message}" + (f" — {problem.hint}" if problem and problem.hint else "")
                             if problem else None, problem.severity if problem else "error")
        # A problem on an advanced option must not hide: show the advanced options then.
        if any(self.rows[name].editor.option.advanced for name in by_option):
            self.show_advanced.setChecked(True)
        self._apply_visibility()

    def focus_option(self, name: str) -> None:
        """Scroll to an option's field and put the cursor in it (from the problem list)."""
        row = self.rows.get(name)
        if row is None:
            return
        if row.editor.option.advanced:
            self.show_advanced.setChecked(True)
        self.scroll.ensureWidgetVisible(row)
        row.editor.setFocus()

    # -- internals ---------------------------------------------------------------------
    def _label_width(self) -> int:
        # One label column width for every group, so the fields line up down the page.
        if not hasattr(self, "_width"):
            metrics = self.fontMetrics()
            self._width = max(metrics.horizontalAdvance(option_label(o) + " *") for o in OPTIONS) + 8
        return self._width

    def _edited(self) -> None:
        self._mark_differences()
        self.valuesChanged.emit()

    def _mark_differences(self) -> None:
        differing = self.differences()
        for name, row in self.rows.items():
            differs = name in differing
            row.reset.setVisible(differs)
            font = self.labels[name].font()
            font.setBold(differs)
            self.labels[name].setFont(font)

    def _apply_visibility(self) -> None:
        query = self.search.text().strip().lower()
        advanced = self.show_advanced.isChecked() or bool(query)
        for group, box in self.groups.items():
            form: QFormLayout = box.layout()
            any_visible = False
            for option in (o for o in OPTIONS if o.group == group):
                row = self.rows[option.name]
                matches = not query or query in option.name.replace("_", " ") or query in option.name \
                    or query in option.help.lower()
                visible = matches and (advanced or not option.advanced or row.error.isVisible()) \
                    and (self.uses(option.name) or row.error.isVisible())
                form.setRowVisible(row, visible)
                any_visible |= visible
            box.setVisible(any_visible)
