"""Checking the open dataset's images in the background, and the Problems pane that lists what is wrong.

Every image is read once (header and end) after the grid was painted, and again when the
folder is re-read; results go to the caption model as they come, and the Problems pane shows
the dataset's problems (captions, names) together with the broken images.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThreadPool, Signal

from ..editing.session import DatasetSession
from ..models.caption_model import CaptionModel
from ..workers.image_check import ImageCheckTask
from .problems_panel import ProblemsPanel
from .status_strip import StatusStrip


class ImageChecks(QObject):
    """Runs one image check at a time for the session it is given and shows the problems."""

    imageCheckDone = Signal()  # every image of the open dataset was checked
    problemsFound = Signal(list)  # rels of images found broken in the latest batch
    problemsCounted = Signal(int)  # how many problems the pane lists now

    def __init__(self, pool: QThreadPool, model: CaptionModel, panel: ProblemsPanel, status: StatusStrip,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool, self.model, self.panel, self.status = pool, model, panel, status
        self.session: DatasetSession | None = None
        self._task: ImageCheckTask | None = None

    def set_session(self, session: DatasetSession | None) -> None:
        """Follow ``session`` (None: no dataset open); a re-read folder is checked again."""
        self.cancel()
        self.session = session
        if session is not None:
            session.datasetReset.connect(self._dataset_reset)
            self.show_problems()

    @property
    def running(self) -> bool:
        """Whether a check is under way."""
        return self._task is not None

    def cancel(self) -> None:
        """Stop the check under way (the dataset is closing)."""
        if self._task is not None:
            self._task.cancel_token.cancel()
            self._task = None
            self.status.release_progress()

    def start(self, session: DatasetSession | None = None) -> None:
        """Check every image of the session (``session``: only if it is still the one followed)."""
        if self.session is None or (session is not None and session is not self.session):
            return
        self.cancel()
        task = ImageCheckTask([(e.rel, e.path) for e in self.session.entries])
        task.signals.batch.connect(self._batch)
        task.signals.done.connect(self._done)
        self._task = task
        self.status.start_progress(len(self.session.entries))
        self.pool.start(task.run)

    def _dataset_reset(self) -> None:
        self.show_problems()
        self.start()

    def _batch(self, infos: dict) -> None:
        # A batch of a cancelled or replaced check may still be on its way: only the current one counts.
        if self.session is None or self.sender() is not (self._task.signals if self._task else None):
            return
        self.model.set_image_info(infos)
        self.status.advance_progress(len(infos))
        broken = [rel for rel, info in infos.items() if info.problem]
        if broken:
            self.problemsFound.emit(broken)

    def _done(self) -> None:
        self.status.finish_progress()
        self._task = None
        self.show_problems()
        self.imageCheckDone.emit()

    def show_problems(self) -> None:
        """List the session's problems and the broken images found so far."""
        if self.session is None:
            return
        image_problems = {rel: info.problem for rel, info in self.model.info.items() if info.problem}
        self.panel.show_problems(self.session.problems, image_problems)
        self.problemsCounted.emit(len(self.session.problems) + len(image_problems))
