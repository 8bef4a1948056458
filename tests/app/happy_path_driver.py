"""The newcomer's first ten minutes, played in the real app on a real X display.

Run by tests/app/test_real_display.py as its own process (Qt's platform is chosen once per
process, and the other app tests use offscreen):

    python happy_path_driver.py WORKSPACE ARTIFACTS RESULT_JSON

Open the demo -> the Edit menu (Undo and Redo on top) -> New Training (toolbar) -> type a longer step count -> Start -> wait for the
first metric line and a point on the loss plot -> Stop -> wait until the run is stopped.
Clicks and typing are real X input events (xdotool) at the widgets' places on the screen;
each stage is photographed by the X server. Every wait is on a condition the user would
see, with a generous deadline that names the stage it was stuck in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

import lora_studio  # noqa: E402,F401 - the PySide refcount guard, before any Qt call
from lora_studio.widgets.main_window import MainWindow  # noqa: E402

STAGE_DEADLINE_S = 90.0
STEPS = 300  # long enough that the run is still training when Stop is pressed


def xdotool(*args: str) -> str:
    return subprocess.run(["xdotool", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def click(widget: QWidget) -> None:
    """A real mouse click in the middle of ``widget``, through the X server."""
    centre = widget.mapToGlobal(widget.rect().center())
    xdotool("mousemove", "--sync", str(centre.x()), str(centre.y()), "click", "1")


class Play:
    """Stages run one after another: each waits for its condition, then acts."""

    def __init__(self, app: QApplication, window: MainWindow, artifacts: Path, result: Path) -> None:
        self.app, self.window, self.artifacts, self.result = app, window, artifacts, result
        self.stages: list[tuple[str, Callable[[], bool], Callable[[], None]]] = []
        self.record: dict = {"stages": [], "screenshots": []}
        self.started = time.monotonic()
        self.timer = QTimer(interval=100)
        self.timer.timeout.connect(self._tick)

    def stage(self, name: str, ready: Callable[[], bool], act: Callable[[], None]) -> None:
        self.stages.append((name, ready, act))

    def shoot(self, name: str) -> None:
        """A screenshot of the whole X screen, after the window has painted."""
        self.window.repaint()
        self.app.processEvents()
        path = self.artifacts / f"{name}.png"
        subprocess.run(["import", "-display", os.environ["DISPLAY"], "-window", "root", str(path)], check=True,
                       timeout=30)
        self.record["screenshots"].append(str(path))

    def start(self) -> None:
        self.stage_started = time.monotonic()
        self.timer.start()

    def _tick(self) -> None:
        if not self.stages:
            return self._finish(0)
        name, ready, act = self.stages[0]
        try:
            if ready():
                self.stages.pop(0)
                self.record["stages"].append({"stage": name, "after_s": round(time.monotonic() - self.started, 1)})
                act()
                self.stage_started = time.monotonic()
            elif time.monotonic() - self.stage_started > STAGE_DEADLINE_S:
                self.record["stuck_in"] = name
                self._finish(1)
        except Exception as exc:  # noqa: BLE001 - reported in the result, the test shows it
            self.record["error"] = f"{name}: {exc!r}"
            self._finish(1)

    def _finish(self, code: int) -> None:
        self.timer.stop()
        self.record["total_s"] = round(time.monotonic() - self.started, 1)
        self.result.write_text(json.dumps(self.record, indent=1), encoding="utf-8")
        self.app.exit(code)


def main() -> int:
    workspace, artifacts, result = (Path(a) for a in sys.argv[1:4])
    artifacts.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1400, 860)
    window.move(0, 0)
    window.show()
    bench = window.workbench
    page = bench.training
    monitor = bench.monitor
    play = Play(app, window, artifacts, result)

    def window_mapped() -> bool:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "LoRA Studio"], capture_output=True,
                               text=True, timeout=30).stdout.split()
        return window.isVisible() and bool(found)

    def open_edit_menu() -> None:
        play.shoot("happy-1-demo-captions")
        bar = window.menuBar()
        centre = bar.mapToGlobal(bar.actionGeometry(window.edit_menu.menuAction()).center())
        xdotool("mousemove", "--sync", str(centre.x()), str(centre.y()), "click", "1")

    def close_edit_menu() -> None:
        play.shoot("happy-1b-edit-menu")
        play.record["edit_menu"] = [a.text() for a in window.edit_menu.actions() if a.text()][:2]
        xdotool("key", "Escape")

    def new_training() -> None:
        click(window.toolbar.widgetForAction(bench.new_training_action))

    def type_steps() -> None:
        play.shoot("happy-2-new-training")
        page.form.focus_option("max_train_steps")
        app.processEvents()
        editor = page.form.rows["max_train_steps"].editor.spin
        click(editor)
        xdotool("key", "--clearmodifiers", "ctrl+a")
        xdotool("type", "--delay", "20", str(STEPS))
        xdotool("key", "Tab")

    def series_points() -> int:
        curves = monitor.plot.curves.get(monitor.run_dir.name) if monitor.run_dir else None
        data = curves.raw.getData()[0] if curves is not None else None
        return 0 if data is None else len(data)

    def metrics_written() -> bool:
        metrics = monitor.run_dir / "metrics.jsonl" if monitor.run_dir else None
        return bool(metrics and metrics.exists() and metrics.read_text(encoding="utf-8").strip())

    def status_state() -> str:
        try:
            return json.loads((monitor.run_dir / "status.json").read_text(encoding="utf-8"))["state"]
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def stopping() -> None:
        play.shoot("happy-3-training")
        play.record["points_when_stopped"] = series_points()
        click(monitor.stop_button)

    def stopped() -> None:
        play.shoot("happy-5-stopped")
        checkpoints = sorted((monitor.run_dir / "checkpoints").glob("step-*"))
        play.record.update(run_dir=str(monitor.run_dir), state=status_state(), monitor_state=monitor.state.text(),
                           checkpoints=[c.name for c in checkpoints], stop_bar=monitor.stop_bar.text.text(),
                           stop_now_shown=monitor.stop_bar.stop_now_button.isVisible())

    play.stage("the main window is on the X screen", window_mapped, lambda: window.open_demo(workspace))
    play.stage("the demo's captions are open", lambda: window.session is not None and window.workspace == workspace,
               open_edit_menu)
    play.stage("the Edit menu is open", lambda: window.edit_menu.isVisible(), close_edit_menu)
    play.stage("the Edit menu is closed", lambda: not window.edit_menu.isVisible(), new_training)
    play.stage("New Training shows the demo's settings",
               lambda: bench.train_stack.currentWidget() is page and page.analysis is not None
               and page.start_button.isEnabled(), type_steps)
    play.stage(f"the form shows {STEPS} steps",
               lambda: page.analysis is not None and page.analysis.figures is not None
               and page.analysis.figures.total_steps == STEPS and page.start_button.isEnabled(),
               lambda: click(page.start_button))
    play.stage("the Runs tab shows the run with a point on the loss plot",
               lambda: bench.currentWidget() is monitor and metrics_written() and series_points() > 0, stopping)
    play.stage("the Stop bar says it is stopping", lambda: "Stopping" in monitor.stop_bar.text.text(),
               lambda: play.shoot("happy-4-stopping"))
    play.stage("the run is stopped", lambda: status_state() == "stopped" and "STOPPED" in monitor.state.text(),
               stopped)
    play.start()
    code = app.exec()
    window.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
