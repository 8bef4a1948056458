"""The places of the main window: Captions, Train, Runs and Fleet, and the flow between them.

New training (from the dataset on screen) -> the settings page -> Start: preflight and a
detached launch on the chosen target in a worker -> the Runs page shows the run. When every
target the run may use is busy, Start queues it instead -> the Fleet page shows it waiting, and
the app sends it when a target frees up.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStackedWidget, QTabWidget, QWidget

from ..fleet import StartDecision, load_gpu_notes, needs_for, start_or_queue
from ..fleet.api import nodes_options
from ..fleet_ui.dispatcher import FleetDispatcher
from ..fleet_ui.fleet_page import FleetPage
from ..monitor.monitor_page import MonitorPage
from ..vsphere.run_snapshot import snapshot_before_run
from ..targets_ui.store import app_context
from ..training.model_finder import find_base_models
from ..training.new_configs import config_name, free_config_path, fresh_output_dir, settings_of_run
from ..training.option_editors import relative_to
from ..training.page import TrainingPage
from ..workers.tasks import TaskRunner
from ..workers.thumbnails import ThumbnailLoader
from ..targets.api import LaunchOutcome
from ..targets_ui.nodes_dialog import NodesChoice
from .node_choice import NodeChoice
from .run_targets import ANY_FREE_TARGET, offer_targets
from .train_start import TrainingStartPage
from .unsaved_settings import may_set_aside

class Workbench(QTabWidget):
    """Tabs for the caption grid, the training settings, the runs and the fleet (targets and queue)."""

    captionsShown = Signal(bool)  # True when the Captions tab comes to the front
    launchDone = Signal(object)   # the LaunchOutcome of a Start, started or not (tests wait on it)

    def __init__(self, captions: QWidget, runner: TaskRunner, thumbnails: ThumbnailLoader,
                 current_dataset: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Workbench")
        self.setDocumentMode(True)
        self.runner = runner
        self.workspace: Path | None = None
        self.new_training_action = QAction("&New Training…", self)
        self.new_training_action.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.new_training_action.setToolTip("Set up a training run for the dataset on screen")
        self.new_training_action.triggered.connect(lambda: self.new_training(current_dataset()))
        self.open_config_action = QAction("&Open Training Config…", self)
        self.open_config_action.setToolTip("Edit a config file of the workspace (configs/)")
        self.open_config_action.triggered.connect(lambda: self.open_config())
        self.training = TrainingPage(runner, self)
        self.start_page = TrainingStartPage([self.new_training_action, self.open_config_action], runner, self)
        self.start_page.configChosen.connect(lambda path: self.open_config(Path(path)))
        # The Train tab: the start page until a config is open, then the form.
        self.train_stack = QStackedWidget(self)
        self.train_stack.addWidget(self.start_page)
        self.train_stack.addWidget(self.training)
        self.monitor = MonitorPage(runner, thumbnails, self)
        # Sends queued runs while the app is open; Start launches through it too (one launcher, one lock).
        self.fleet = FleetDispatcher(runner, parent=self)
        self.fleet.dispatched.connect(self._queued_runs_went_out)
        self.fleet_page = FleetPage(self.fleet, self)
        # The Runs list shows the queued runs too, as the dispatcher last read the queue.
        self.fleet.snapshotReady.connect(lambda snapshot: self.monitor.show_queue(snapshot.queue))
        self.monitor.cancelQueued.connect(self.fleet_page.cancel_run)
        self.monitor.trainAgain.connect(lambda run_dir: self.train_again(Path(run_dir)))
        self.monitor.requeueQueued.connect(self.fleet_page.requeue_run)
        self._queued_here: str | None = None  # the run this page's Start queued last (its note follows it)
        for page in (self.train_stack, self.monitor, self.fleet_page):
            # A tab widget is as wide as its widest page's minimum; without this, the Train
            # page's row of buttons would squeeze the Captions tab's docks to nothing.
            page.setMinimumSize(480, 320)
        self.captions = captions
        self.addTab(captions, "Captions")
        self.addTab(self.train_stack, "Train")
        self.addTab(self.monitor, "Runs")
        self.addTab(self.fleet_page, "Fleet")
        self.currentChanged.connect(self._tab_changed)
        self.training.startRequested.connect(self.start_training)
        self.node_choice = NodeChoice(self.training, self)  # "Several targets…" in Run on

    def offer_targets(self) -> None:
        """Fill the Train page's Run on list from the saved targets (read again: they may have changed)."""
        offer_targets(self.training, self.node_choice)

    def set_workspace(self, workspace: Path | None) -> None:
        """Follow another workspace: its runs, its presets, its configs."""
        self.workspace = workspace
        self.monitor.set_workspace(workspace)
        self.start_page.set_workspace(workspace)
        self.fleet.set_workspace(workspace)

    def _tab_changed(self, index: int) -> None:
        self.captionsShown.emit(self.widget(index) is self.captions)
        if self.widget(index) is self.train_stack and self.train_stack.currentWidget() is self.start_page:
            self.start_page.refresh()  # a config may have been saved or copied in meanwhile

    def show_training_page(self) -> None:
        """The Train tab with the config being edited."""
        self.train_stack.setCurrentWidget(self.training)
        self.setCurrentWidget(self.train_stack)

    def show_runs(self) -> None:
        self.setCurrentWidget(self.monitor)

    def show_fleet(self) -> None:
        """The Fleet tab: targets, what runs there, and the queue."""
        self.setCurrentWidget(self.fleet_page)

    # -- configs -----------------------------------------------------------------------
    def new_training(self, dataset: Path | None) -> None:
        """A new config for ``dataset`` in `<workspace>/configs/`, filled with what can be guessed."""
        if self.workspace is None:
            QMessageBox.information(self, "New training", "Open a workspace first (File > Open Workspace): the "
                                    "config, the base model and the runs live in it.")
            return
        if not may_set_aside(self, self.training, "starting a new one"):
            return
        name = config_name(dataset.name if dataset else "lora")
        configs = self.workspace / "configs"
        path = free_config_path(configs, name)
        values: dict = {}
        if dataset is not None:
            values["train_data_dir"] = relative_to(dataset, configs, allow_parent=True)
        models = find_base_models(self.workspace)
        if models:
            values["base_model"] = relative_to(models[0].path, configs, allow_parent=True)
        values["output_dir"] = fresh_output_dir(self.workspace / "runs", name, configs)
        values["output_name"] = name
        self.training.new_config(path, self.workspace, values)
        self.show_training_page()

    def train_again(self, run_dir: Path) -> None:
        """A new config in `<workspace>/configs/` with the settings of the run in ``run_dir`` (a folder of
        its own beside that run's, nothing resumed), to change and start from the Train tab."""
        if self.workspace is None:
            QMessageBox.information(self, "Train again", "Open a workspace first (File > Open Workspace): the new "
                                    "config goes into its configs folder.")
            return
        configs = self.workspace / "configs"
        try:
            values = settings_of_run(run_dir, configs)
        except ValueError as exc:
            QMessageBox.warning(self, "Train again", str(exc))
            return
        if not may_set_aside(self, self.training, f"opening the settings of {run_dir.name}"):
            return
        name = config_name(str(values.get("output_name") or run_dir.name))
        values["output_dir"] = fresh_output_dir(run_dir.parent, name, configs)
        self.training.new_config(free_config_path(configs, name), self.workspace, values, from_run=run_dir)
        self.show_training_page()

    def open_config(self, path: Path | None = None) -> None:
        """Edit an existing YAML config (asks for it when ``path`` is None)."""
        if path is None:
            start = str(self.workspace / "configs") if self.workspace else str(Path.home())
            chosen, _ = QFileDialog.getOpenFileName(self, "Open training config", start, "YAML (*.yaml *.yml)")
            if not chosen:
                return
            path = Path(chosen)
        if not may_set_aside(self, self.training, f"opening {path.name}"):
            return
        self.training.open_config(path, self.workspace)
        self.show_training_page()

    def import_kohya(self) -> None:
        """Bring a kohya_ss `.json` or sd-scripts `.toml` config into the open (or a new) config."""
        chosen, _ = QFileDialog.getOpenFileName(self, "Import a kohya config", str(self.workspace or Path.home()),
                                                "kohya configs (*.json *.toml)")
        if not chosen:
            return
        if self.training.config_path is None:
            self.new_training(None)
        try:
            left_out = self.training.import_kohya(Path(chosen))
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Import", f"{chosen} cannot be imported: {exc}")
            return
        self.show_training_page()
        if left_out:
            QMessageBox.information(self, "Imported", "Imported. Not imported (see Problems for why):\n\n"
                                    + "\n".join(left_out))

    # -- launching ---------------------------------------------------------------------
    def start_training(self, config_path: str) -> None:
        """Preflight and launch on the chosen target (or the first free one) in a worker, then show the run;
        queue it when the targets it may use are busy."""
        try:
            context = app_context()
        except Exception as exc:  # noqa: BLE001 - an unreadable targets file is shown, not raised
            QMessageBox.warning(self, "Targets", f"The saved targets cannot be read: {exc}")
            return
        nodes = self.node_choice.chosen()
        if nodes is not None:
            self._start_on_nodes(config_path, nodes, context)
            return
        name = self.training.target_name()
        target = next((t for t in context.settings.targets if t.name == name), context.settings.targets[0])
        allowed = [] if name == ANY_FREE_TARGET else [target.name]
        self.training.start_button.setEnabled(False)
        self.training.start_reason.setText(f"Checking {target.name if allowed else 'the targets'} and starting…")
        workspace = self.workspace
        before = snapshot_before_run if self.training.snapshot_first() else None
        if before is not None:
            self.training.start_reason.setText(f"Checking {target.name}, then a snapshot of its VM, then starting…")
        fleet, values, analysis = self.fleet, dict(self.training.raw), self.training.analysis
        memory = analysis.memory.total_gb if analysis is not None and analysis.memory is not None else None
        launch_fn = functools.partial(fleet.launch_fn, before_start=before)

        def start() -> StartDecision:
            if workspace is None:  # no workspace, no shared queue: start there, or say why not
                return StartDecision(outcome=launch_fn(target, Path(config_path), context), target=target.name)
            with fleet.start_lock:  # not at the same moment as this desk's pass over the queue
                needs = needs_for(values, memory, allowed, load_gpu_notes(fleet.notes_path))
                return start_or_queue(Path(config_path), list(context.settings.targets), context, workspace, needs,
                                      fleet.desk, notes_path=fleet.notes_path, launch_fn=launch_fn,
                                      options={"snapshot_first": True} if before is not None else {})
        self.runner.start(start, on_done=self._start_decided, on_error=self._launch_failed)

    def _start_on_nodes(self, config_path: str, nodes: NodesChoice, context) -> None:
        """One run over several targets: every node's preflight and the network between them, then torchrun
        on each (in a worker); queued until all of them are free when one is busy."""
        targets = [t for name in nodes.targets for t in context.settings.targets if t.name == name]
        if len(targets) != len(nodes.targets):
            QMessageBox.warning(self, "Targets", "A target of this run is no longer set up: choose the targets again.")
            return
        self.training.start_button.setEnabled(False)
        self.training.start_reason.setText(f"Checking {len(targets)} targets and the network between them, then "
                                           "starting torchrun on each…")
        workspace, fleet, values, analysis = self.workspace, self.fleet, dict(self.training.raw), self.training.analysis
        memory = analysis.memory.total_gb if analysis is not None and analysis.memory is not None else None

        def on_nodes(_first, config, ctx, *, workspace=None) -> LaunchOutcome:  # start_or_queue's launch
            return fleet.launch_nodes_fn(targets, config, ctx, workspace=workspace, options=nodes.options)

        def start() -> StartDecision:
            if workspace is None:  # no workspace, no shared queue: start there, or say why not
                return StartDecision(outcome=on_nodes(None, Path(config_path), context), target=targets[0].name)
            with fleet.start_lock:  # not at the same moment as this desk's pass over the queue
                needs = replace(needs_for(values, memory, list(nodes.targets), load_gpu_notes(fleet.notes_path)),
                                together=True)
                return start_or_queue(Path(config_path), list(context.settings.targets), context, workspace, needs,
                                      fleet.desk, notes_path=fleet.notes_path, launch_fn=on_nodes,
                                      options=nodes_options(nodes.options))
        self.runner.start(start, on_done=self._start_decided, on_error=self._launch_failed)

    def _start_decided(self, decision: StartDecision) -> None:
        """Started (or refused by the preflight): as before; queued: say what it waits for, show the queue."""
        if decision.queued is None:
            self._launched(decision.outcome)
            return
        self.training.start_button.setEnabled(True)
        entry = decision.queued
        self._queued_here = str(entry.run_dir)
        self.training.start_reason.setText(f"Queued — waits for {decision.waits_for}. It starts by itself when "
                                           "a target frees up (the Fleet tab shows the queue).")
        self.fleet_page.show_queued(entry.run_dir, decision.waits_for, entry.queued_at)
        self.show_fleet()

    def _queued_runs_went_out(self, outcomes: list) -> None:
        """Queued runs were started (or failed to): the Runs list shows them; the Train tab's note follows."""
        if any(o.kind == "started" for o in outcomes):
            self.monitor.refresh_runs()
        mine = next((o for o in outcomes if str(o.run_dir) == self._queued_here and o.kind != "busy"), None)
        if mine is not None:
            self._queued_here = None
            self.training.start_reason.setText(
                f"{mine.run_dir.name} started on {mine.target} from the queue." if mine.kind == "started"
                else f"{mine.run_dir.name} left the queue: {mine.message} (see the Fleet tab).")

    def _launched(self, outcome) -> None:
        self.training.start_button.setEnabled(True)
        if not outcome.started:
            failures = [f"• {c.message}" + (f" — {c.hint}" if c.hint else "")
                        for c in outcome.report.checks if c.status == "error"]
            snapshot = any(c.name == "snapshot" and c.status == "error" for c in outcome.report.checks)
            self.training.start_reason.setText("Not started: the VM's snapshot could not be taken." if snapshot else
                                               "Not started: the preflight found problems.")
            box = QMessageBox(QMessageBox.Icon.Warning, "Not started",
                              "The run was not started:\n\n" + "\n".join(failures), QMessageBox.StandardButton.Ok, self)
            box.setObjectName("notStartedBox")
            box.finished.connect(lambda _: box.deleteLater())
            box.open()  # not exec(): the UI thread never waits on a message
            self.launchDone.emit(outcome)
            return
        self.training.start_reason.setText("")
        self.show_runs()
        self.monitor.refresh_runs()
        self.monitor.pending_selection = str(outcome.prepared.local_run_dir)
        self.launchDone.emit(outcome)

    def _launch_failed(self, message: str) -> None:
        self.training.start_button.setEnabled(True)
        self.training.start_reason.setText("")
        QMessageBox.warning(self, "Not started", f"The run could not be started: {message}")
