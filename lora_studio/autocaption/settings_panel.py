"""The left half of the Auto-caption dialog: which images, which model, and how."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from trainer.labeling.args import DEFAULT_GENERAL_THRESHOLD

from ..jobs.places import Place
from .captioners import CaptionerChoice, check_captioner
from .request import LabelRequest

SCOPES = (("selected", "Selected"), ("filtered", "Filtered"), ("all", "All"))
MODES = (("fill", "Fill missing captions only"), ("append", "Append to existing captions"),
         ("prepend", "Prepend to existing captions"), ("replace", "Replace existing captions"))
MODE_HINTS = {
    "fill": "Only images without a caption are captioned; no caption is ever overwritten.",
    "append": "Generated text goes after each caption; tags it already has are not repeated.",
    "prepend": "Generated text goes before each caption; tags it already has are not repeated.",
    "replace": "⚠ Overwrites captions, including ones written by hand (Undo restores them).",
}
DEVICES = (("auto", "Auto (GPU when there is one)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))


def model_label(choice: CaptionerChoice) -> str:
    """Short, so that it fits the combo box; the hint under it has the details."""
    if not choice.usable:
        return f"{choice.name} — cannot be used"
    return f"{choice.name} — {'tagger' if choice.is_tagger else 'captioner'}"


def default_scope(counts: dict[str, int]) -> str:
    """Like the bulk-edit dialog: a multi-selection, else a narrowing filter, else everything."""
    if counts.get("selected", 0) > 1:
        return "selected"
    return "filtered" if counts.get("filtered", 0) not in (0, counts.get("all", 0)) else "all"


class SettingsPanel(QWidget):
    """Scope, model (checked by file names), mode, trigger, tagger options, batch, device, target."""

    changed = Signal()  # anything that changes what Start would do

    def __init__(self, scopes: dict[str, list[str]], captioners: list[CaptionerChoice], workspace: Path,
                 places: list[Place], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scopes, self.workspace = scopes, workspace
        scope_box = QGroupBox("Images", self)
        scope_row = QHBoxLayout(scope_box)
        self.scope_group = QButtonGroup(self)
        self.scope_buttons: dict[str, QRadioButton] = {}
        for name, _label in SCOPES:
            button = QRadioButton(scope_box)
            self.scope_group.addButton(button)
            self.scope_buttons[name] = button
            scope_row.addWidget(button)
        scope_row.addStretch(1)

        self.model_combo = QComboBox(self)
        for choice in captioners:
            self.model_combo.addItem(model_label(choice), choice)
        if not captioners:
            self.model_combo.addItem("No captioning models found")
        self.model_hint = self._hint()
        self.mode_combo = QComboBox(self)
        for value, label in MODES:
            self.mode_combo.addItem(label, value)
        self.mode_hint = self._hint()
        self.trigger = QLineEdit(self)
        self.trigger.setPlaceholderText("optional, e.g. zkstyle (put first in every caption)")
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(DEFAULT_GENERAL_THRESHOLD)
        self.exclude = QLineEdit(self)
        self.exclude.setPlaceholderText("e.g. solo, simple background")
        self.batch = QSpinBox(self)
        self.batch.setRange(1, 256)
        self.batch.setValue(8)
        self.batch.setToolTip("Images per model call (halved automatically when memory runs out)")
        self.device = QComboBox(self)
        for value, label in DEVICES:
            self.device.addItem(label, value)
        self.target = QComboBox(self)
        for place in places:
            self.target.addItem(place.name, place)
        self.threshold_label, self.exclude_label = QLabel("Tag threshold:", self), QLabel("Exclude tags:", self)

        settings = QGroupBox("Settings", self)
        form = QFormLayout(settings)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, field in (("Model:", self.model_combo), ("", self.model_hint), ("Mode:", self.mode_combo),
                             ("", self.mode_hint), ("Trigger word:", self.trigger),
                             (self.threshold_label, self.threshold), (self.exclude_label, self.exclude),
                             ("Batch size:", self.batch), ("Device:", self.device), ("Run on:", self.target)):
            form.addRow(label, field)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scope_box)
        layout.addWidget(settings)

        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.scope_group.buttonToggled.connect(lambda *_: self.changed.emit())
        self.trigger.textChanged.connect(lambda _text: self.changed.emit())
        self.set_scopes(scopes)
        self.scope_buttons[default_scope({n: len(r) for n, r in scopes.items()})].setChecked(True)
        self._model_changed()
        self._mode_changed()

    def _hint(self) -> QLabel:
        label = QLabel("", self)
        label.setObjectName("hint")
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        return label

    # -- reading --------------------------------------------------------------------------------
    def captioner(self) -> CaptionerChoice | None:
        """The chosen model folder (None when the workspace has none)."""
        data = self.model_combo.currentData()
        return data if isinstance(data, CaptionerChoice) else None

    def scope(self) -> str:
        """'selected', 'filtered' or 'all'."""
        return next((name for name, button in self.scope_buttons.items() if button.isChecked()), "all")

    def mode(self) -> str:
        """fill | append | prepend | replace."""
        return str(self.mode_combo.currentData())

    def place(self) -> Place | None:
        """Where the job runs."""
        return self.target.currentData()

    def request(self, dataset: Path, images: list[str]) -> LabelRequest:
        """The job the controls describe, for ``images``."""
        choice = self.captioner()
        assert choice is not None
        tagger = choice.is_tagger
        return LabelRequest(dataset, tuple(images), choice.path, self.mode(), self.trigger.text().strip(),
                            self.threshold.value() if tagger else None, self.exclude.text() if tagger else "",
                            self.batch.value(), str(self.device.currentData()))

    # -- changing -------------------------------------------------------------------------------
    def set_scopes(self, scopes: dict[str, list[str]]) -> None:
        """New selected / filtered / all images (the grid changed)."""
        self.scopes = scopes
        for name, label in SCOPES:
            count = len(scopes.get(name, []))
            self.scope_buttons[name].setText(f"{label} ({count:,})")
            self.scope_buttons[name].setEnabled(count > 0)
        if not scopes.get(self.scope()):
            fallback = next((name for name in ("all", "filtered", "selected") if scopes.get(name)), None)
            if fallback:
                self.scope_buttons[fallback].setChecked(True)
        self.changed.emit()

    def show_request(self, request: LabelRequest, target: str) -> None:
        """Show the settings of a job found again in its run folder (the panel is locked while it runs)."""
        for index in range(self.model_combo.count()):
            choice = self.model_combo.itemData(index)
            if isinstance(choice, CaptionerChoice) and choice.path == request.model:
                self.model_combo.setCurrentIndex(index)
                break
        else:  # the model folder is not in this workspace's list (moved, or another workspace's)
            self.model_combo.insertItem(0, f"{request.model.name} — used by this job", check_captioner(request.model))
            self.model_combo.setCurrentIndex(0)
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(request.mode)))
        self.trigger.setText(request.trigger)
        if request.threshold is not None:
            self.threshold.setValue(request.threshold)
        self.exclude.setText(request.exclude)
        self.batch.setValue(request.batch_size)
        self.device.setCurrentIndex(max(0, self.device.findData(request.device)))
        names = [self.target.itemData(index).target_name for index in range(self.target.count())]
        if target in names:  # "" is this computer
            self.target.setCurrentIndex(names.index(target))

    def set_locked(self, locked: bool) -> None:
        """Lock the settings while a job runs (its request is fixed)."""
        for widget in (self.model_combo, self.mode_combo, self.trigger, self.batch, self.device, self.target):
            widget.setEnabled(not locked)
        for name, button in self.scope_buttons.items():
            button.setEnabled(not locked and bool(self.scopes.get(name)))
        if locked:
            for widget in (self.threshold, self.exclude, self.threshold_label, self.exclude_label):
                widget.setEnabled(False)
        else:
            self._model_changed()

    def recheck_models(self) -> None:
        """Check the model folders again (one may have changed since the dialog opened)."""
        for index in range(self.model_combo.count()):
            choice = self.model_combo.itemData(index)
            if isinstance(choice, CaptionerChoice):
                fresh = check_captioner(choice.path)
                self.model_combo.setItemData(index, fresh)
                self.model_combo.setItemText(index, model_label(fresh))
        self._model_changed()

    def _model_changed(self) -> None:
        choice = self.captioner()
        if choice is None:
            self.model_hint.setText(f"Copy a captioning model into {self.workspace / 'models' / 'captioners'}/<name>/: "
                                    "a BLIP folder saved with save_pretrained, or a WD14 tagger folder with "
                                    "model.onnx and selected_tags.csv.")
        elif not choice.usable:
            self.model_hint.setText(f"⚠ {self._shown(choice.path)}: {choice.problem}")
        else:
            shown = self._shown(choice.path)
            self.model_hint.setText(f"{choice.description}, writes {'tags' if choice.is_tagger else 'sentences'}"
                                    f"\n{shown}")
        self.model_hint.setToolTip(str(choice.path) if choice is not None else "")
        tagger = choice is not None and choice.is_tagger
        for widget in (self.threshold, self.exclude, self.threshold_label, self.exclude_label):
            widget.setEnabled(tagger)
        self.threshold.setToolTip("The confidence a tag needs to be written" if tagger
                                  else "Only taggers (WD14-style) use this")
        self.exclude.setToolTip("Comma-separated tags never to write" if tagger
                                else "Only taggers (WD14-style) use this")
        self.changed.emit()

    def _shown(self, path: Path) -> str:
        """A model folder as the hint shows it: short inside the workspace (the tooltip has it all)."""
        try:
            return path.relative_to(self.workspace).as_posix()
        except ValueError:
            return str(path)

    def _mode_changed(self) -> None:
        self.mode_hint.setText(MODE_HINTS[self.mode()])
        self.changed.emit()
