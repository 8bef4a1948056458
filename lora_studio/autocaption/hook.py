"""The main window's "Auto-caption…" action and the glue between the dialog and the session.

Kept out of ``main_window.py`` so that the window only creates the controller: the
controller adds its action to the Edit menu and the toolbar, opens the dialog for the
dataset on screen, and applies the results to *that* dataset's session as one undo step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence

from ..resources import icon
from .captioners import find_captioners, job_workspace
from .dialog import AutoCaptionDialog
from .launchers import available_launchers

if TYPE_CHECKING:
    from ..editing.session import DatasetSession
    from ..widgets.main_window import MainWindow


class AutoCaptionController(QObject):
    """Owns the action and the open dialog (one at a time)."""

    def __init__(self, window: "MainWindow", poll_ms: int = 300) -> None:
        super().__init__(window)
        self.window = window
        self.poll_ms = poll_ms
        self.dialog: AutoCaptionDialog | None = None
        self.action = QAction("Auto-&caption…", window)
        self.action.setIcon(icon("autocaption"))
        self.action.setProperty("iconName", "autocaption")  # re-tinted with the theme
        self.action.setShortcut(QKeySequence("Ctrl+Shift+L"))
        self.action.setToolTip("Caption images with a captioning model (Ctrl+Shift+L)")
        self.action.setStatusTip("Caption images with a local captioning model; preview, then apply with undo")
        self.action.triggered.connect(self.open_dialog)
        self.action.setEnabled(window.session is not None)
        window.datasetOpened.connect(lambda _root: self.action.setEnabled(True))
        self._insert_after(window.actions.find_replace)
        window.installEventFilter(self)  # to end a running job when the window closes
        # The dialog is not modal: its scope counts follow the grid's selection and filter.
        self._scope_timer = QTimer(self, singleShot=True, interval=150)
        self._scope_timer.timeout.connect(self._update_scopes)
        grid = window.grid
        for signal in (grid.selection_model().selectionChanged, grid.proxy.layoutChanged, grid.proxy.modelReset,
                       grid.proxy.rowsInserted, grid.proxy.rowsRemoved):
            signal.connect(lambda *_: self.dialog is not None and self._scope_timer.start())

    def _insert_after(self, anchor: QAction) -> None:
        """Put the action after ``anchor`` in the Edit menu and the toolbar."""
        for container in [a.menu() for a in self.window.menuBar().actions()
                          if a.menu() is not None and anchor in a.menu().actions()] + [self.window.toolbar]:
            actions = container.actions()
            if anchor not in actions:
                continue
            position = actions.index(anchor) + 1
            if position < len(actions):
                container.insertAction(actions[position], self.action)
            else:
                container.addAction(self.action)

    def open_dialog(self) -> AutoCaptionDialog | None:
        """Open the dialog for the dataset on screen (non-modal), or raise the open one."""
        window, session = self.window, self.window.session
        if session is None:
            window.statusBar().showMessage("Open a dataset first, then auto-caption its images.", 5000)
            return None
        old = self.dialog
        if old is not None and not old.closing and old.dataset != session.root and not old.running:
            old.reject()  # it was for a dataset that is no longer on screen
        if self.dialog is not None and not self.dialog.closing:
            self._update_scopes()
            self.dialog.show()
            self.dialog.raise_()
            return self.dialog
        window.detail.commit()
        dialog = AutoCaptionDialog(
            dataset=session.root, scopes=self._scopes(session), captions=lambda: self._captions(session),
            apply=lambda changes, name: self._apply(session, changes, name),
            captioners=find_captioners(window.workspace, session.root),
            workspace=job_workspace(window.workspace, session.root), launchers=available_launchers(),
            flush_edits=self._flush_edits, parent=window, poll_ms=self.poll_ms)
        session.captionsChanged.connect(dialog.grid_changed)
        dialog.applied.connect(lambda count, name: window.statusBar().showMessage(
            f"{name}: {count:,} caption{'s' if count != 1 else ''} changed (Undo takes it back)", 8000))
        dialog.finished.connect(lambda _result: self._forget(dialog, session))
        self.dialog = dialog
        dialog.show()
        return dialog

    def _scopes(self, session: "DatasetSession") -> dict[str, list[str]]:
        rel_of = [entry.rel for entry in session.entries]
        scopes = ("selected", "filtered", "all")
        return {scope: [rel_of[row] for row in self.window.scope_rows(scope)] for scope in scopes}

    def _update_scopes(self) -> None:
        session = self.window.session
        if self.dialog is not None and session is not None and self.dialog.dataset == session.root:
            self.dialog.set_scopes(self._scopes(session))

    def _captions(self, session: "DatasetSession") -> dict[str, str] | None:
        """The session's captions now; None once another dataset replaced it."""
        if self.window.session is not session:
            return None
        return dict(zip(session.rels(), session.captions))

    def _apply(self, session: "DatasetSession", changes: dict[str, str], name: str) -> int:
        if self.window.session is not session:
            return 0
        return session.set_captions(changes, name)

    def _flush_edits(self) -> None:
        self.window.grid.finish_editing()
        self.window.detail.commit()

    def _forget(self, dialog: AutoCaptionDialog, session: "DatasetSession") -> None:
        if self.window.session is session:
            try:
                session.captionsChanged.disconnect(dialog.grid_changed)
            except (RuntimeError, TypeError):
                pass  # already gone with the session
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's API
        """When the window closes, a running job ends with it (it only proposed captions)."""
        if watched is self.window and event.type() == QEvent.Type.Close:
            for dialog in self.window.findChildren(AutoCaptionDialog):  # a closing one may still run
                dialog.shutdown()
        return False
