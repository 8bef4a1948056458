"""The app on a real X display (Xvfb + Qt's xcb platform), started and used as a user would:
it opens a window (the X libraries are there, or it says which to install), and the demo's
happy path — New Training, Start, a point on the plot, Stop, stopped with a checkpoint — works."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app_helpers import ARTIFACTS
from lora_studio import xcb_check
from real_display import Xvfb, is_blank, missing_tools

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def xserver():
    missing = missing_tools()
    if missing:
        pytest.skip(f"no real X display here: apt-get install {' '.join(missing)} (scripts/system-packages.txt)")
    server = Xvfb()
    yield server
    server.close()


def _skip_without_xcb(monkeypatch, server: Xvfb) -> None:
    monkeypatch.setenv("DISPLAY", server.display)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    problem = xcb_check.xcb_problem()
    if problem:
        pytest.skip(f"Qt's xcb plugin cannot load here: {problem}")


def test_the_app_opens_its_window_on_a_real_x_display(xserver, monkeypatch, tmp_path):
    _skip_without_xcb(monkeypatch, xserver)
    app = subprocess.Popen([sys.executable, "-m", "lora_studio", "--workspace", str(tmp_path)], cwd=ROOT,
                           env=xserver.env(LORA_STUDIO_HOME=str(tmp_path / "home")), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        # --sync waits until a visible window with that title is mapped.
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "LoRA Studio"],
                               env=xserver.env(), capture_output=True, text=True, timeout=90)
        assert found.returncode == 0 and found.stdout.split(), app.poll() is not None and app.stdout.read()
        # Mapped is not yet painted: wait (bounded) for the first frame to reach the screen.
        shot = ARTIFACTS / "real-x-main-window.png"
        deadline = time.monotonic() + 60
        while is_blank(xserver.screenshot(shot)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not is_blank(shot)
    finally:
        app.terminate()
        app.wait(timeout=30)


def _grey_pixels(path: Path) -> int:
    """Pixels of the screenshot at the mid-grey a 16-bit value of 32768 converts to."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((r >= 124) & (r <= 132) & (r == g) & (g == b)).sum())


def test_the_grid_shows_a_16bit_png_as_the_grey_the_trainer_sees(xserver, monkeypatch, tmp_path):
    _skip_without_xcb(monkeypatch, xserver)
    from PIL import Image
    data = tmp_path / "data"
    data.mkdir()
    Image.new("I;16", (400, 300), 32768).save(data / "grey16.png")
    Image.new("RGB", (400, 300), (200, 40, 40)).save(data / "red.png")
    (data / "metadata.csv").write_text("filename,prompt\ngrey16.png,a grey card\nred.png,a red card\n")
    app = subprocess.Popen([sys.executable, "-m", "lora_studio", "--dataset", str(data)], cwd=ROOT,
                           env=xserver.env(LORA_STUDIO_HOME=str(tmp_path / "home")), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "LoRA Studio"], env=xserver.env(),
                       capture_output=True, timeout=90, check=True)
        # The thumbnail is decoded off the UI thread: wait (bounded) until a grey card is on screen.
        shot = ARTIFACTS / "real-x-grid-16bit.png"
        deadline = time.monotonic() + 60
        while _grey_pixels(xserver.screenshot(shot)) < 3000 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _grey_pixels(shot) >= 3000  # a white card (the old decoder) has none
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_missing_x_libraries_are_named_with_the_packages_to_install(tmp_path, monkeypatch):
    """A plugin that links to a library this system lacks: the app names it and its Debian package."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build a plugin with a missing library (apt-get install gcc)")
    (tmp_path / "empty.c").write_text("int placeholder(void) { return 0; }\n")
    lib = tmp_path / "libxcb-nothere.so.7"
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libxcb-nothere.so.7", "-o", str(lib), str(tmp_path / "empty.c")],
                   check=True)
    plugin = tmp_path / "platforms" / "libqxcb.so"
    plugin.parent.mkdir()
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "empty.c"), "-Wl,--no-as-needed", str(lib)],
                   check=True)
    lib.unlink()  # now the linker cannot find it, as on a fresh desktop
    assert xcb_check.missing_libraries(plugin) == ["libxcb-nothere.so.7"]
    monkeypatch.setattr(xcb_check, "xcb_plugin", lambda: plugin)
    monkeypatch.setattr(xcb_check, "wants_xcb", lambda: True)
    message = xcb_check.xcb_problem()
    assert "libxcb-nothere.so.7" in message and "sudo apt-get install libxcb-nothere7" in message
    assert [xcb_check.debian_package(n) for n in ("libxcb-icccm.so.4", "libxkbcommon-x11.so.0", "libEGL.so.1",
                                                  "libX11-xcb.so.1")] == [
        "libxcb-icccm4", "libxkbcommon-x11-0", "libegl1", "libx11-xcb1"]


@pytest.mark.slow
def test_the_demos_happy_path_on_a_real_display(xserver, monkeypatch, tmp_path):
    _skip_without_xcb(monkeypatch, xserver)
    result = tmp_path / "result.json"
    driver = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("happy_path_driver.py")), str(tmp_path / "demo"), str(ARTIFACTS),
         str(result)], cwd=ROOT, env=xserver.env(LORA_STUDIO_HOME=str(tmp_path / "home")), capture_output=True,
        text=True, timeout=240)
    record = json.loads(result.read_text()) if result.exists() else {}
    assert driver.returncode == 0, (record, driver.stdout[-3000:], driver.stderr[-3000:])
    assert record["state"] == "stopped" and "STOPPED" in record["monitor_state"]
    assert record["points_when_stopped"] >= 1
    assert "saved a checkpoint and stopped" in record["stop_bar"] and not record["stop_now_shown"]
    run = Path(record["run_dir"])
    status = json.loads((run / "status.json").read_text())
    # The stop saved a checkpoint at the step it stopped at (save_steps may have saved earlier ones).
    assert status["last_checkpoint"] == f"checkpoints/{record['checkpoints'][-1]}"
    assert record["checkpoints"][-1] == f"step-{status['step']:08d}"
    assert record["edit_menu"] == ["&Undo", "&Redo"]  # after the dataset opened: Edit keeps them
    assert len(record["screenshots"]) == 6 and not any(is_blank(Path(p)) for p in record["screenshots"])
    assert record["total_s"] < 120, record["stages"]
