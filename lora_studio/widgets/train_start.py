"""What the Train tab shows before a config is open: what to do, and the workspace's configs.

Never a form full of values nobody chose: the form appears only with a config behind it
(a file, or a new one that says it is not saved yet).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from .empty_state import EmptyState
from ..workers.tasks import TaskRunner

TITLE = "No training config open"
TEXT = ("Start a <b>New Training</b> for the dataset on screen (from the workspace's preset when it has one, "
        "else from the defaults), or open one of the workspace's configs below.")


@dataclass(frozen=True)
class ConfigEntry:
    """One config file of a workspace, with what a user recognises it by."""

    path: Path
    modified: float
    summary: str


def list_configs(workspace: Path) -> list[ConfigEntry]:
    """The `.yaml` configs in ``workspace``/configs, newest first, each with a one-line summary."""
    folder = workspace / "configs"
    if not folder.is_dir():
        return []
    entries = []
    for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]:
        try:
            modified = path.stat().st_mtime
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            entries.append(ConfigEntry(path, 0.0, "cannot be read: open it to see why"))
            continue
        entries.append(ConfigEntry(path, modified, _summary(data if isinstance(data, dict) else {})))
    return sorted(entries, key=lambda e: e.modified, reverse=True)


def _summary(data: dict) -> str:
    parts = []
    if data.get("train_data_dir"):
        parts.append(Path(str(data["train_data_dir"])).name)
    if data.get("base_model"):
        parts.append(Path(str(data["base_model"])).name)
    parts.append(f"{data.get('resolution', 512)} px")
    return " · ".join(parts)


def _age(modified: float, now: float) -> str:
    minutes = max(0, int(now - modified) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return time.strftime("%Y-%m-%d", time.localtime(modified))


class TrainingStartPage(EmptyState):
    """The empty Train tab: New Training, Open Config and the workspace's configs."""

    configChosen = Signal(str)

    def __init__(self, actions: list[QAction], runner: TaskRunner, parent: QWidget | None = None) -> None:
        configs = QListWidget()
        configs.setObjectName("configList")
        configs.setMinimumWidth(520)
        label = QLabel()
        label.setObjectName("hint")
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label)
        layout.addWidget(configs)
        super().__init__(actions, parent, title=TITLE, text=TEXT, below=box)
        self.configs, self.configs_label = configs, label
        self.configs.itemActivated.connect(self._chosen)
        self.setObjectName("TrainingStartPage")
        self.runner = runner
        self.workspace: Path | None = None
        self.set_workspace(None)

    def set_workspace(self, workspace: Path | None) -> None:
        """List ``workspace``'s configs (read in a worker: the share may be slow)."""
        self.workspace = workspace
        self.configs.clear()
        if workspace is None:
            self.configs_label.setText("Open a workspace to see its configs.")
            self.configs.hide()
            return
        self.configs_label.setText(f"Looking for configs in {workspace / 'configs'}…")
        self.runner.start(list_configs, workspace, on_done=lambda entries: self._listed(workspace, entries),
                          on_error=lambda message: self.configs_label.setText(f"The configs cannot be listed: {message}"),
                          owner=self)

    def refresh(self) -> None:
        """List the configs again (a new one may have been saved)."""
        self.set_workspace(self.workspace)

    def _listed(self, workspace: Path, entries: list[ConfigEntry]) -> None:
        if workspace != self.workspace:
            return  # another workspace was opened meanwhile
        self.configs.clear()
        if not entries:
            self.configs_label.setText(f"No configs in {workspace / 'configs'} yet.")
            self.configs.hide()
            return
        self.configs_label.setText("Configs in this workspace (double-click to open):")
        now = time.time()
        for entry in entries:
            item = QListWidgetItem(f"{entry.path.name}    —    {entry.summary}    ({_age(entry.modified, now)})",
                                   self.configs)
            item.setData(Qt.ItemDataRole.UserRole, str(entry.path))
            item.setToolTip(str(entry.path))
        # As tall as its rows (up to eight), so a short list is not a big empty box.
        rows = min(len(entries), 8)
        self.configs.setFixedHeight(self.configs.sizeHintForRow(0) * rows + 2 * self.configs.frameWidth() + 4)
        self.configs.show()

    def _chosen(self, item: QListWidgetItem) -> None:
        self.configChosen.emit(item.data(Qt.ItemDataRole.UserRole))
