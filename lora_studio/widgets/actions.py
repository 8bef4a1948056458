"""The window's actions: one place for names, icons, shortcuts and tooltips."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from ..resources import icon

Key = QKeySequence.StandardKey


@dataclass
class Actions:
    """Every action of the main window (menus and toolbar share them)."""

    open_workspace: QAction
    open_dataset: QAction
    open_text_file: QAction
    open_demo: QAction
    save: QAction
    reload: QAction
    add_images: QAction
    trash: QAction
    quit: QAction
    edit_caption: QAction
    bulk_edit: QAction
    add_tag: QAction
    find_replace: QAction
    prepend_trigger: QAction
    select_all: QAction
    resolve_conflicts: QAction
    icon_mode: QAction
    table_mode: QAction
    focus_filter: QAction
    next_image: QAction
    previous_image: QAction
    about: QAction


def _make(parent: QWidget, text: str, icon_name: str | None = None, shortcut=None, tip: str = "") -> QAction:
    action = QAction(text, parent)
    if icon_name:
        action.setIcon(icon(icon_name))
        action.setProperty("iconName", icon_name)  # to re-tint after a theme change
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    shortcut_text = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    base = tip or text.replace("&", "").rstrip("…")
    action.setToolTip(f"{base} ({shortcut_text})" if shortcut_text else base)
    action.setStatusTip(base)
    return action


def create_actions(parent: QWidget) -> Actions:
    """Build all actions with their shortcuts."""
    actions = Actions(
        open_workspace=_make(parent, "&Open Workspace…", "open", Key.Open, "Open a workspace folder"),
        open_dataset=_make(parent, "Open &Dataset Folder…", "dataset", "Ctrl+Shift+O", "Open one dataset folder"),
        open_text_file=_make(parent, "Open &Text Dataset File…", None, None,
                             "Open a .jsonl or .json file of training examples for a language model"),
        open_demo=_make(parent, "Open De&mo Workspace", "demo", None, "Create and open the demo workspace"),
        save=_make(parent, "&Save Captions", "save", Key.Save, "Save captions now (they also save automatically)"),
        reload=_make(parent, "&Reload from Disk", "refresh", "F5", "Re-read the dataset folder"),
        add_images=_make(parent, "&Add Images…", None, "Ctrl+Shift+A", "Copy images into this dataset"),
        trash=_make(parent, "Move to &Trash", "trash", Key.Delete, "Move the selected images to the trash"),
        quit=_make(parent, "&Quit", None, Key.Quit),
        edit_caption=_make(parent, "&Edit Caption", None, "F2", "Edit the caption of the current image"),
        bulk_edit=_make(parent, "&Bulk Edit…", "bulk", "Ctrl+B", "Edit many captions at once"),
        add_tag=_make(parent, "Add &Tag…", "tag", "Ctrl+T", "Add a tag to many captions"),
        find_replace=_make(parent, "Find and &Replace…", "search", Key.Replace, "Find and replace in captions"),
        prepend_trigger=_make(parent, "&Prepend Trigger Word…", None, "Ctrl+Shift+T", "Put a trigger word first"),
        select_all=_make(parent, "Select &All", None, Key.SelectAll),
        resolve_conflicts=_make(parent, "Resolve &Conflicts…", "warning", None, "Settle captions changed on disk"),
        icon_mode=_make(parent, "&Thumbnails", "grid", "Ctrl+1", "Show thumbnails"),
        table_mode=_make(parent, "T&able", "table", "Ctrl+2", "Show a table"),
        focus_filter=_make(parent, "&Filter…", "filter", Key.Find, "Filter the images"),
        next_image=_make(parent, "&Next Image", None, "Ctrl+Down", "Select the next image"),
        previous_image=_make(parent, "&Previous Image", None, "Ctrl+Up", "Select the previous image"),
        about=_make(parent, "&About LoRA Studio", None),
    )
    if actions.find_replace.shortcut().isEmpty():  # no standard Replace key on some platforms
        actions.find_replace.setShortcut(QKeySequence("Ctrl+H"))
    actions.icon_mode.setCheckable(True)
    actions.table_mode.setCheckable(True)
    actions.resolve_conflicts.setEnabled(False)
    return actions
