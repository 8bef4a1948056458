"""``python -m lora_studio`` / ``lora-studio``: start the desktop app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="lora-studio", description="LoRA Studio: caption datasets, train LoRAs.")
    parser.add_argument("--workspace", type=Path, help="open this workspace folder")
    parser.add_argument("--dataset", type=Path, help="open this dataset folder directly")
    parser.add_argument("--demo", action="store_true", help="create (if needed) and open the demo workspace")
    parser.add_argument("--quit-after-open", action="store_true",
                        help="print the opened dataset and exit (a smoke test of an installation)")
    parser.add_argument("--self-test", action="store_true",
                        help="open the main window, check that its parts load, exit 0 when all is well")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the app; returns the exit code."""
    args = parse_args(argv)
    from .xcb_check import xcb_problem
    problem = xcb_problem()
    if problem is not None:  # else Qt aborts with a message that names no package
        print(problem, file=sys.stderr, flush=True)
        return 1
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from . import APP_NAME, __version__
    from .applog import install_excepthook, log, setup_logging
    from .resources import icon
    from .settings import Settings
    from .theme import apply_theme
    from .widgets.main_window import MainWindow

    # The names first: they choose the log folder (QStandardPaths) as well as the settings.
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setOrganizationName("LoRA Studio")
    QCoreApplication.setApplicationVersion(__version__)
    log_path = setup_logging()
    install_excepthook()
    log.info("%s %s starting (frozen=%s)", APP_NAME, __version__, getattr(sys, "frozen", False))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setWindowIcon(icon("app"))
    settings = Settings()
    apply_theme(app, settings.theme)
    # Follow the OS when it switches between light and dark while we run.
    app.styleHints().colorSchemeChanged.connect(
        lambda _scheme: settings.theme == "system" and apply_theme(app, "system"))
    window = MainWindow(settings)
    window.show()
    if args.self_test:
        return _self_test(window, app, log_path)
    if args.quit_after_open:
        def report(path: str) -> None:
            print(f"opened {path}", flush=True)
            window.close()
            app.quit()

        def failed(message: str) -> None:
            print(f"failed: {message}", file=sys.stderr, flush=True)
            app.exit(1)

        window.datasetOpened.connect(report)
        window.datasetFailed.connect(failed)
    if args.demo:
        window.open_demo(args.workspace)
    elif args.workspace:
        window.open_workspace(args.workspace)
    elif args.dataset:
        window.open_dataset_folder(args.dataset)
    else:
        recent = settings.recent_workspaces()
        if recent:
            window.open_workspace(Path(recent[0]))
    return app.exec()


def _self_test(window, app, log_path: Path) -> int:
    """Run ``--self-test`` on the shown window; prints the verdict, returns the exit code."""
    from .selftest import run_self_test

    app.processEvents()  # let the window lay itself out and the first queued work run
    problems = run_self_test(window, app)
    window.close()
    if problems:
        for problem in problems:
            print(f"self-test: {problem}", file=sys.stderr, flush=True)
        return 1
    print(f"self-test: ok (log: {log_path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
