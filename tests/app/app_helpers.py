"""Helpers shared by the app tests (datasets on disk, opening folders, screenshots)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def opened_folders() -> Iterator[list[str]]:
    """The local paths the app hands to the desktop (QDesktopServices.openUrl) meanwhile, caught by
    Qt's own handler hook instead of starting a file manager."""
    from PySide6.QtCore import QObject, QUrl, Slot
    from PySide6.QtGui import QDesktopServices

    class Catcher(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.paths: list[str] = []

        @Slot(QUrl)
        def take(self, url: QUrl) -> None:
            self.paths.append(url.toLocalFile())

    catcher = Catcher()
    QDesktopServices.setUrlHandler("file", catcher, "take")
    try:
        yield catcher.paths
    finally:
        QDesktopServices.unsetUrlHandler("file")


@contextmanager
def answer_prompt(name: str, button) -> Iterator[list[str]]:
    """Within the block, click ``button`` (a standard button, or a button's text) of the modal message box
    named ``name`` when the app opens it (it blocks in its own event loop, so the click comes from a timer
    there); yields the texts it asked."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    asked: list[str] = []
    watching = [True]

    def click_when_open() -> None:
        box = QApplication.activeModalWidget()
        if not watching[0]:
            return
        if isinstance(box, QMessageBox) and box.objectName() == name:
            asked.append(box.text())
            chosen = next(b for b in box.buttons() if b.text() == button) if isinstance(button, str) else box.button(button)
            chosen.click()
        QTimer.singleShot(20, click_when_open)  # look again on a later turn of the loop

    QTimer.singleShot(0, click_when_open)
    try:
        yield asked
    finally:
        watching[0] = False  # a later test's prompt is not this block's to answer


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


# The tensor names (and the shapes the family check looks at) of each family's base model.
BASE_MODEL_KEYS = {
    "sd1": {"model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
            "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 768]},
    "sdxl": {"model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
             "model.diffusion_model.label_emb.0.0.weight": [1280, 2816],
             "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
             "conditioner.embedders.1.model.positional_embedding": [77, 1280]},
    "lora": {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320],
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": [320, 4]},
}


def write_base_model_header(path: Path, family: str = "sd1") -> Path:
    """A `.safetensors` file whose header is a ``family`` base model's (or, for "lora", a LoRA's),
    with zero data: what the form's family check reads; nothing in the app loads the weights."""
    import json
    import math
    import struct

    header, offset = {}, 0
    for key, shape in BASE_MODEL_KEYS[family].items():
        size = 2 * math.prod(shape)
        header[key] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def scene_window(workspace: Path):
    """For the screenshot scripts (no qtbot): the app, and a main window shown on ``workspace``.

    On a real X display (QT_QPA_PLATFORM=xcb) it fills the 1600x1000 screen the scripts' Xvfb has.
    """
    from PySide6.QtWidgets import QApplication

    import lora_studio  # noqa: F401 - the app's start-up guards
    from lora_studio.widgets.main_window import MainWindow
    app = QApplication.instance() or QApplication([])
    window = MainWindow(autosave_ms=200, poll_ms=0)
    window.resize(*((1600, 1000) if on_real_x() else (1400, 880)))
    window.show()
    window.open_workspace(workspace)
    return app, window


def on_real_x() -> bool:
    """Whether Qt draws on a real X server (then the screen is captured, window frames and all)."""
    import os
    return os.environ.get("QT_QPA_PLATFORM") == "xcb"


@contextmanager
def temporary_scene(build: Callable[[Path], Path]) -> Iterator[tuple[object, object, Path]]:
    """For the screenshot scripts: a temporary app home, the workspace ``build(folder)`` makes in a temporary
    folder, and the app with its main window shown on it (:func:`scene_window`)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LORA_STUDIO_HOME"] = str(Path(tmp) / "home")
        workspace = build(Path(tmp))
        app, window = scene_window(workspace)
        yield app, window, workspace


def place_sd3_files(models: Path, split: Path) -> Path:
    """The tiny SD3.5 Medium's ``split`` files as ComfyUI users keep them under ``models``: the checkpoint
    (without its text encoders) in checkpoints/, CLIP-L, CLIP-G and T5 in clip/, the T5 tokenizer beside
    them. Returns the checkpoint."""
    import shutil

    for sub, name in (("checkpoints", "sd3.5-tiny-medium.safetensors"), ("clip", "clip_l.safetensors"),
                      ("clip", "clip_g.safetensors"), ("clip", "t5xxl_tiny.safetensors")):
        (models / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(split / name, models / sub / name)
    shutil.copytree(split / "t5_tokenizer", models / "t5_tokenizer")
    return models / "checkpoints" / "sd3.5-tiny-medium.safetensors"


def save_screen(path: Path, widget) -> Path:
    """A PNG of the whole X screen on a real display (ImageMagick's ``import``), else of ``widget``."""
    import os
    import subprocess
    path.parent.mkdir(parents=True, exist_ok=True)
    if on_real_x():
        subprocess.run(["import", "-display", os.environ["DISPLAY"], "-window", "root", str(path)], check=True)
    else:
        widget.grab().save(str(path))
    return path


def edit_then_kill(script: str, target: Path, app_home: Path) -> None:
    """Run the child app ``tests/app/<script>`` on ``target`` and SIGKILL it once it printed EDITED
    (its edit reached the session, unsaved): what a crash or a power cut leaves behind."""
    import os
    import signal
    import subprocess
    import sys

    here = Path(__file__).parent
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LORA_STUDIO_HOME=str(app_home), PYTHONPATH=str(here.parents[1]))
    child = subprocess.Popen([sys.executable, str(here / script), str(target)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "EDITED" not in line:  # a child that dies or ends early ends the loop with an empty line
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert "EDITED" in line, child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
