"""The training page: presets, the settings form and its YAML view side by side in tabs,
live validation and figures, and Save / Start.

The YAML text is the document: the form edits it through `update_yaml_text`, so a loaded
file keeps its comments and key order, and what is saved is exactly what the YAML tab shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QInputDialog, QListWidgetItem, QMessageBox, QStyle, QWidget

from trainer.config.migrate import migrate
from trainer.config.schema import OPTIONS_BY_NAME, SCHEMA_VERSION, defaults
from trainer.config.yaml_edit import update_yaml_text
from trainer.fsutil import atomic_write_text
from trainer.wording import plural

from ..workers.tasks import TaskRunner
from .analysis import Analysis, Processes, analyse, this_computer_has_cuda
from .figures_text import figures_html, memory_html
from .model_finder import find_base_models
from .option_editors import relative_to
from .page_layout import build_page
from .presets import Preset, belongs_to_one_run, closest_preset, list_presets, same_value, save_user_preset, start_preset

VALIDATE_DELAY_MS = 300


class TrainingPage(QWidget):
    """Edits one config file of the workspace."""

    startRequested = Signal(str)  # the saved config's path
    analysisDone = Signal()
    familyChanged = Signal(str)  # the base model's family id, after each check

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPage")
        self.runner = runner
        self.workspace: Path | None = None
        self.config_path: Path | None = None
        self.raw: dict[str, Any] = {}
        self.saved_text = ""
        self.analysis: Analysis | None = None
        self.processes = Processes()  # of the chosen Run on (several over several nodes: widgets/node_choice.py)
        # (base_model, note): the files found beside a split model, said while that model is chosen.
        self.found_note: tuple[Any, str] = (None, "")
        self._generation = 0
        self._syncing = False

        self.local_targets = {"This computer"}  # the targets on this computer, and those on a vSphere VM
        self.vm_targets: set[str] = set()
        build_page(self)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self._validate)
        self._yaml_timer = QTimer(self)
        self._yaml_timer.setSingleShot(True)
        self._yaml_timer.setInterval(VALIDATE_DELAY_MS)
        self._yaml_timer.timeout.connect(self._yaml_to_form)
        self._set_title()

    # -- opening and saving ------------------------------------------------------------
    def open_config(self, path: Path, workspace: Path | None) -> None:
        """Edit the config file at ``path`` (a new, empty one when it does not exist)."""
        self.workspace = workspace
        self.config_path = Path(path)
        try:
            text = self.config_path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            QMessageBox.warning(self, "Cannot open the config", f"{path} cannot be read: {exc}")
            return
        self.saved_text = text
        self._reload_presets()
        if workspace is not None:
            self.runner.start(find_base_models, workspace, on_done=self.form.set_models, owner=self)
        self._set_yaml(text)
        self._yaml_to_form()
        self._compare_with(closest_preset(self.presets, self.form.values()))
        self._set_title()

    def new_config(self, path: Path, workspace: Path | None, values: dict[str, Any], *,
                   from_run: Path | None = None) -> None:
        """Start a new config at ``path`` with ``values`` (for example the dataset just picked).

        It starts from the workspace's start preset when it has one (the demo's 64 px
        settings), else from the schema's defaults; the preset box says which. A config
        ``from_run`` holds that run's settings (``values``, every one that is not a default)
        and is compared with the preset closest to them.
        """
        self.open_config(path, workspace)
        preset = None if from_run is not None else start_preset(self.presets)
        start = {k: v for k, v in (preset.values if preset else {}).items() if not belongs_to_one_run(k)}
        text = f"# Train with: python -m trainer train --config {path.name}\nschema_version: {SCHEMA_VERSION}\n"
        if from_run is not None:
            text = f"# The settings of run {from_run.name} ({from_run}), for a new run.\n" + text
        self._set_yaml(update_yaml_text(text, {"schema_version": SCHEMA_VERSION, **start, **values}))
        self._yaml_to_form()
        self._compare_with(preset if from_run is None else closest_preset(self.presets, self.form.values()))

    def save(self) -> bool:
        """Write the YAML view's text to the config file, atomically."""
        if self.config_path is None:
            return False
        try:
            atomic_write_text(self.config_path, self.yaml_edit.toPlainText())
        except OSError as exc:
            QMessageBox.warning(self, "Not saved", f"{self.config_path} could not be written: {exc.strerror}. "
                                "Your settings are still here; check the folder and save again.")
            return False
        self.saved_text = self.yaml_edit.toPlainText()
        self._set_title()
        return True

    def is_modified(self) -> bool:
        return self.yaml_edit.toPlainText() != self.saved_text

    # -- presets -----------------------------------------------------------------------
    def set_targets(self, names: list[str], local: set[str] | frozenset[str] = frozenset({"This computer"}),
                    vms: set[str] | frozenset[str] = frozenset()) -> None:
        """The targets the Start button can use (the first is the default); ``local``: those on this computer,
        ``vms``: those on a vSphere VM (they offer "Snapshot the VM first")."""
        current = self.target_box.currentText()
        self.local_targets, self.vm_targets = set(local), set(vms)
        self.target_box.clear()
        self.target_box.addItems(names)
        if current in names:
            self.target_box.setCurrentText(current)
        self._target_changed()

    def target_name(self) -> str:
        return self.target_box.currentText()

    def snapshot_first(self) -> bool:
        """Whether the chosen target is a VM and the user asked for a snapshot before the run."""
        return self.target_box.currentText() in self.vm_targets and self.snapshot_box.isChecked()

    def set_processes(self, processes: Processes) -> None:
        """The trainer processes the chosen Run on starts (several over several nodes): the figures follow."""
        if processes != self.processes:
            self.processes = processes
            if self.config_path is not None:
                self._timer.start()

    def _target_changed(self) -> None:
        self.snapshot_box.setVisible(self.target_box.currentText() in self.vm_targets)
        if self.config_path is not None:
            self._timer.start()

    def _reload_presets(self) -> None:
        self.presets = list_presets(self.workspace)
        self.preset_box.clear()
        self.preset_box.addItem("Defaults", None)
        for preset in self.presets:
            self.preset_box.addItem(("" if preset.builtin else "★ ") + preset.description, preset.name)

    def _compare_with(self, preset: Preset | None) -> None:
        """Show ``preset`` (None: the defaults) in the preset box and mark the fields that differ from it."""
        self.preset_box.setCurrentIndex(max(0, self.preset_box.findData(preset.name if preset else None)))
        self.form.set_baseline(dict(preset.values) if preset else {})
        self._refresh_differences()

    def _preset(self) -> Preset | None:
        name = self.preset_box.currentData()
        return next((p for p in self.presets if p.name == name), None)

    def _preset_chosen(self) -> None:
        """Apply the preset's values over the current ones (the run's paths and name are kept)."""
        preset = self._preset()
        values = dict(preset.values) if preset else {}
        self.form.set_baseline(values)
        current = self.form.values()
        for name, value in defaults().items():
            if not belongs_to_one_run(name):
                current[name] = values.get(name, value)
        self.form.set_values(current)
        self._form_edited()

    def _save_as_preset(self) -> None:
        if self.workspace is None:
            return
        name, ok = QInputDialog.getText(self, "Save as preset", "Name of the preset (saved in the workspace):")
        if ok and name.strip():
            changed = {k: v for k, v in self.form.values().items() if not same_value(k, v, defaults()[k])}
            saved = save_user_preset(self.workspace, name.strip(), name.strip(), changed)
            self._reload_presets()
            self._compare_with(next((p for p in self.presets if p.path == saved), None))

    # -- form <-> YAML -----------------------------------------------------------------
    def _set_yaml(self, text: str) -> None:
        self._syncing = True
        self.yaml_edit.setPlainText(text)
        self._syncing = False

    def _form_edited(self) -> None:
        """Write the form's values into the YAML text, touching only what changed."""
        values = self.form.values()
        merged: dict[str, Any] = {}
        for key, old in self.raw.items():
            if key not in OPTIONS_BY_NAME:
                merged[key] = old  # schema_version and keys the validator will report
            elif same_value(key, values[key], old):
                merged[key] = old  # keep the user's spelling (2e-4 stays 2e-4)
            else:
                merged[key] = values[key]
        for key, value in values.items():
            if key not in merged and not same_value(key, value, defaults()[key]):
                merged[key] = value
        self.raw = merged
        self._set_yaml(update_yaml_text(self.yaml_edit.toPlainText(), merged))
        self._after_change()

    def _yaml_edited(self) -> None:
        if not self._syncing:
            self._yaml_timer.start()
            self._set_title()

    def _yaml_to_form(self) -> None:
        """Parse the YAML text and show it in the form (a broken text only shows a problem)."""
        text = self.yaml_edit.toPlainText()
        try:
            data = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            self._text_unreadable(f"The YAML text cannot be read{where}: {getattr(exc, 'problem', exc)}")
            return
        if not isinstance(data, dict):
            self._text_unreadable("The YAML text must be a list of `option: value` lines.")
            return
        version = data.get("schema_version", SCHEMA_VERSION)
        migrated = {k: v for k, v in data.items() if k != "schema_version"}
        notes = migrate(migrated, version) if isinstance(version, int) and 1 <= version <= SCHEMA_VERSION else []
        if notes:
            # Write the new names into the document at once (comments stay), and say so.
            migrated = {"schema_version": SCHEMA_VERSION, **migrated}
            self._set_yaml(update_yaml_text(text, migrated))
            data = migrated
        self.raw = data
        self.form.set_values({k: v for k, v in data.items() if k in OPTIONS_BY_NAME})
        self.migration_notes = [f"Updated this config to the current option names: {note}" for note in notes]
        self._after_change()

    # -- validation --------------------------------------------------------------------
    def _after_change(self) -> None:
        self._refresh_differences()
        self._set_title()
        self.start_button.setEnabled(False)
        self.start_reason.setText("Checking…")
        self._timer.start()

    def _validate(self) -> None:
        self._generation += 1
        generation = self._generation
        base = self.config_path.parent if self.config_path else (self.workspace or Path.cwd())
        on_cpu = self.target_box.currentText() in self.local_targets and not this_computer_has_cuda()
        self.runner.start(analyse, dict(self.raw), base, self.workspace, on_cpu, self.processes,
                          on_done=lambda result: self._analysed(generation, result),
                          on_error=lambda message: self._show_problems([("error", f"Could not check the settings: "
                                                                                  f"{message}", "")]), owner=self)

    def _analysed(self, generation: int, analysis: Analysis) -> None:
        if generation != self._generation:
            return  # the user typed again meanwhile; a newer check is on its way
        if analysis.companions and self._fill_companions(analysis.companions):
            return  # the filled-in values are checked next
        self.analysis = analysis
        self.form.set_family(analysis.family)
        self.familyChanged.emit(analysis.family.family if analysis.family else "sd")
        self.form.show_problems(analysis.problems)
        entries = [(p.severity, f"{p.option + ': ' if p.option else ''}{p.message}" + (f" — {p.hint}" if p.hint else ""),
                    p.option) for p in analysis.problems]
        entries += [("info", note, "") for note in getattr(self, "migration_notes", [])]
        found_for, found = self.found_note
        if found and found_for == self.raw.get("base_model"):
            entries.append(("info", found, "base_model"))
        self._show_problems(entries)
        self._show_figures(analysis)
        self.analysisDone.emit()

    def _fill_companions(self, found: dict[str, Path]) -> bool:
        """Put the files found for a split model's unset options into the form; True when any was."""
        base = self.config_path.parent if self.config_path else self.workspace
        filled = {option: relative_to(path, base, allow_parent=True) for option, path in found.items()
                  if not self.raw.get(option)}
        if not filled:
            return False
        for option, value in filled.items():
            self.form.rows[option].editor.set_value(value)
        self.found_note = (self.raw.get("base_model"),
                           f"Found the model's other files beside it (ComfyUI's folders): {', '.join(filled)}")
        self._form_edited()  # as if typed: into the YAML text too, and checked again
        return True

    def _text_unreadable(self, message: str) -> None:
        """The YAML text cannot be parsed: say where, and drop any check still in flight."""
        self._generation += 1
        self._timer.stop()
        self.analysis = None
        self._show_problems([("error", message, "")])

    def _show_problems(self, entries: list[tuple[str, str, str]]) -> None:
        """List (severity, text, option) entries; Start is on only without errors."""
        icons = {"error": QStyle.StandardPixmap.SP_MessageBoxCritical, "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
                 "info": QStyle.StandardPixmap.SP_MessageBoxInformation}
        self.problem_list.clear()
        for severity, text, option in entries:
            item = QListWidgetItem(self.style().standardIcon(icons[severity]), text, self.problem_list)
            item.setData(Qt.ItemDataRole.UserRole, option)
        if not entries:
            QListWidgetItem(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                            "No problems: ready to train.", self.problem_list)
        errors = sum(1 for severity, _, _ in entries if severity == "error")
        ready = not errors and self.config_path is not None
        self.start_button.setEnabled(ready)
        waiting = plural(errors, "problem is", "problems are")
        self.start_reason.setText("" if ready else f"Start is off until {waiting} fixed:")

    def _show_figures(self, analysis: Analysis) -> None:
        self.figures.setText(figures_html(analysis))
        self.memory.setText(memory_html(analysis.memory) if analysis.figures is not None else "")

    def _refresh_differences(self) -> None:
        self.diff_list.clear()
        for name, (preset_value, value) in self.form.differences().items():
            QListWidgetItem(f"{name}: {preset_value!r} → {value!r}", self.diff_list)
        if self.diff_list.count() == 0:
            QListWidgetItem("Same as the preset.", self.diff_list)

    def _set_title(self) -> None:
        if self.config_path is None:
            self.title.setText("<b>No config open</b>")
            return
        if not self.config_path.exists():
            state = " — new, not saved yet"
        else:
            state = " — modified" if self.is_modified() else ""
        self.title.setText(f"<b>{self.config_path.name}</b>{state}")

    def import_kohya(self, path: Path) -> list[str]:
        """Merge a kohya_ss `.json` / sd-scripts `.toml` config into this one; returns what was left out."""
        from trainer.config.kohya_import import import_kohya_file
        result = import_kohya_file(path)
        self.raw = {**self.raw, **result.values}
        self._set_yaml(update_yaml_text(self.yaml_edit.toPlainText(), self.raw))
        self._yaml_to_form()
        self.migration_notes = [f"from {path.name}: {key} was not imported ({why})"
                                for key, why in sorted(result.not_mapped.items())] + result.notes
        return [f"{key}: {why}" for key, why in sorted(result.not_mapped.items())]

    def _start(self) -> None:
        if self.save() and self.config_path is not None:
            self.startRequested.emit(str(self.config_path))
