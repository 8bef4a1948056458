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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the app; returns the exit code."""
    args = parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from . import APP_NAME
    from .resources import icon
    from .settings import Settings
    from .theme import apply_theme
    from .widgets.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("LoRA Studio")
    app.setWindowIcon(icon("app"))
    settings = Settings()
    apply_theme(app, settings.theme)
    # Follow the OS when it switches between light and dark while we run.
    app.styleHints().colorSchemeChanged.connect(
        lambda _scheme: settings.theme == "system" and apply_theme(app, "system"))
    window = MainWindow(settings)
    window.show()
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


if __name__ == "__main__":
    sys.exit(main())
