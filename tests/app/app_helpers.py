"""Helpers shared by the app tests (datasets on disk, opening folders, screenshots)."""

from __future__ import annotations

import random
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def make_images(folder: Path, count: int, size=(96, 72), start: int = 0) -> list[str]:
    """``count`` small distinct PNGs named img_000.png... in ``folder``; returns the names."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(count)
    names = []
    for i in range(start, start + count):
        name = f"img_{i:03d}.png"
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        Image.new("RGB", size, color).save(folder / name)
        names.append(name)
    return names


CAPTIONS = ["a painting of a red fox, forest", "a photo of a cat, indoors", "", "oil painting, portrait, woman",
            "a painting of mountains, snow, sunset", "sketch, dog"]


def write_dataset(folder: Path, fmt: str, count: int = 6) -> dict[str, str]:
    """A dataset in ``fmt`` (csv/jsonl/txt) with CAPTIONS cycled; returns {name: caption}."""
    import json

    names = make_images(folder, count)
    captions = {n: CAPTIONS[i % len(CAPTIONS)] for i, n in enumerate(names)}
    if fmt == "csv":
        lines = ["filename,prompt"] + [f'{n},"{c}"' for n, c in captions.items() if c]
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        lines = [json.dumps({"file_name": n, "text": c}) for n, c in captions.items() if c]
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        for n, c in captions.items():
            if c:
                (folder / n).with_suffix(".txt").write_text(c, encoding="utf-8")
    return captions



def open_folder(qtbot, win, folder: Path) -> None:
    """Open a dataset folder and wait until the grid shows it."""
    with qtbot.waitSignal(win.datasetOpened, timeout=10_000):
        win.open_dataset_folder(folder)


def screenshot(widget, name: str) -> Path:
    """Save a PNG of ``widget`` to tests/artifacts/ for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    widget.grab().save(str(path))
    return path


def new_main_window(qtbot, size: tuple[int, int] | None = (1400, 860)):
    """A shown main window as the tests use it: fast autosave, no background polling.

    Created again in one test, it is the next start of the app (same app home).
    ``size`` None leaves the window the size it comes up in: the saved one, else the default.
    """
    from lora_studio.widgets.main_window import MainWindow

    win = MainWindow(autosave_ms=200, poll_ms=0)
    qtbot.addWidget(win)
    if size is not None:
        win.resize(*size)
    win.show()
    return win
