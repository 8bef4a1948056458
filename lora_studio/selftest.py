"""``--self-test``: open the main window and check that its parts load (smoke test of a bundle).

A frozen bundle can miss a data file or a hidden import and only fail when a user clicks
the wrong thing; this opens what a user sees first and touches each part once.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QApplication, QDockWidget, QTabWidget

from .paths import resources_dir

CheckFn = Callable[[], None]


def _check_resources() -> None:
    root = resources_dir()
    for part in ("icons/app.svg", "themes/light.qss", "themes/dark.qss", "presets"):
        if not (root / part).exists():
            raise RuntimeError(f"missing resource {root / part}")


def _check_trainer_schema() -> None:
    # The torch-free contract modules the app imports; the schema drives the training form.
    from trainer.config import schema
    if not schema.defaults():
        raise RuntimeError("trainer schema has no options")
    import trainer.captions  # noqa: F401
    import trainer.rundir  # noqa: F401


def _check_tokenizer() -> None:
    # Without these files token counts silently fall back to an estimate: check them here.
    from . import tokens
    folder = tokens._tokenizer_dir()
    if not (folder / "vocab.json").exists():
        raise RuntimeError(f"CLIP tokenizer files missing in {folder}")


def run_self_test(window, app: QApplication) -> list[str]:
    """Check the opened main window; returns the problems found (empty when all is well)."""
    from .resources import icon

    problems: list[str] = []

    def check(name: str, fn: CheckFn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - report every failing part, not just the first
            problems.append(f"{name}: {type(exc).__name__}: {exc}")

    def docks() -> None:
        found = {dock.windowTitle() for dock in window.findChildren(QDockWidget)}
        missing = {"Workspace", "Tags", "Details", "Problems", "Targets"} - found
        if missing:
            raise RuntimeError(f"docks missing: {sorted(missing)}")

    def tabs() -> None:
        tabs = window.findChild(QTabWidget) if not isinstance(window.centralWidget(), QTabWidget) \
            else window.centralWidget()
        names = [tabs.tabText(i) for i in range(tabs.count())] if tabs else []
        if names[:3] != ["Captions", "Train", "Runs"]:
            raise RuntimeError(f"tabs are {names}")

    def icons() -> None:
        for name in ("app", "open", "save", "undo", "autocaption"):
            if icon(name).isNull():
                raise RuntimeError(f"icon {name!r} did not load")

    def shown() -> None:
        if not window.isVisible():
            raise RuntimeError("main window is not shown")

    check("resources", _check_resources)
    check("window", shown)
    check("docks", docks)
    check("tabs", tabs)
    check("icons", icons)
    check("trainer schema", _check_trainer_schema)
    check("tokenizer", _check_tokenizer)
    return problems
