"""`python -m trainer label` through the real CLI, on tiny models built in code (issue 9)."""

from __future__ import annotations

import csv
import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_helpers import ROOT, trainer_cli
from trainer.captions import CaptionFormat, read_captions, write_captions
from trainer.rundir import read_jsonl, read_status

RED, BLUE = (230, 20, 20), (20, 20, 230)
RED_TAGS = "red theme, solo, hatsune miku, simple background, ^_^"
BLUE_TAGS = "blue theme, solo, hatsune miku, simple background, ^_^"
HAND = "hand written, solo"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from trainer.labeling.tiny import make_tiny_captioners
    return make_tiny_captioners(tmp_path_factory.mktemp("captioners"))


def _images(folder: Path, colours: dict[str, tuple[int, int, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in colours.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 36), colour).save(folder / name)


def _label(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return trainer_cli("label", *args, cwd=cwd, timeout=240)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


# -- the tagger: every mode in every format ----------------------------------------------

EXPECTED_BLUE = {
    "fill": HAND,
    "append": f"zz, {HAND}, blue theme, hatsune miku, simple background, ^_^",
    "prepend": f"zz, blue theme, hatsune miku, simple background, ^_^, {HAND}",
    "replace": f"zz, {BLUE_TAGS}",
}


@pytest.mark.parametrize("fmt", ["csv", "txt", "jsonl"])
@pytest.mark.parametrize("mode", ["fill", "append", "prepend", "replace"])
def test_tagger_modes_and_formats(tmp_path, models, fmt, mode):
    data = tmp_path / "data"
    _images(data, {"red.png": RED, "sub/blue.png": BLUE})
    write_captions(data, {"sub/blue.png": HAND}, CaptionFormat(fmt))
    if fmt == "csv":  # an extra column and the row order must survive
        (data / "metadata.csv").write_text(f"filename,prompt,notes\nsub/blue.png,\"{HAND}\",keep me\n")
    run_dir = tmp_path / "job"
    _ok(_label("--input", str(data), "--model", str(models["wd14"]), "--mode", mode, "--trigger", "zz",
               "--run-dir", str(run_dir)))
    captions, problems = read_captions(data, CaptionFormat(fmt))
    assert not problems
    assert captions["red.png"] == f"zz, {RED_TAGS}"
    assert captions["sub/blue.png"] == EXPECTED_BLUE[mode]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO((data / "metadata.csv").read_text())))
        assert rows[0] == ["filename", "prompt", "notes"]
        assert rows[1][0] == "sub/blue.png" and rows[1][2] == "keep me"
        assert rows[2][0] == "red.png"
    else:
        assert not (data / "metadata.csv").exists()
    lines = read_jsonl(run_dir / "captions.jsonl")
    assert {line["file"] for line in lines} == ({"red.png"} if mode == "fill" else {"red.png", "sub/blue.png"})
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["step"] == status["total_steps"] == len(lines)


def test_tagger_thresholds_excludes_and_rating(tmp_path, models):
    data = tmp_path / "data"
    _images(data, {"red.png": RED})
    _ok(_label("--input", str(data), "--model", str(models["wd14"]), "--format", "txt", "--threshold", "0.55",
               "--character-threshold", "0.6", "--exclude", "solo, simple_background", "--rating"))
    # Sorted by confidence: red theme ~1.0, hatsune miku .88, the rating "general" .80, kagamine rin .70;
    # ^_^ (.50) is under the threshold, solo and simple background are excluded.
    assert (data / "red.txt").read_text() == "red theme, hatsune miku, general, kagamine rin"


def test_format_conversion_keeps_hand_written_sidecars(tmp_path, models):
    data = tmp_path / "data"
    _images(data, {"red.png": RED, "blue.png": BLUE})
    (data / "blue.txt").write_text(HAND)
    _ok(_label("--input", str(data), "--model", str(models["wd14"]), "--format", "jsonl"))
    captions, _ = read_captions(data, CaptionFormat.JSONL)
    assert captions == {"blue.png": HAND, "red.png": RED_TAGS}
    assert (data / "blue.txt").read_text() == HAND


# -- BLIP -----------------------------------------------------------------------------------

def test_blip_seed_command_finds_the_workspace_captioner(tmp_path, models):
    """The seed's two-argument form, run from the workspace; one image is broken."""
    shutil.copytree(models["blip"], tmp_path / "models" / "captioners" / "tiny-blip")
    data = tmp_path / "data" / "style_train"
    _images(data, {"a.png": RED, "b.jpg": BLUE, "10_x/c.png": RED})
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = _label("--input", "data/style_train", "--output", "data/style_train/metadata.csv",
                    "--run-dir", "runs/label-1", "--max-new-tokens", "6", cwd=tmp_path)
    _ok(result)
    assert "broken.png" in result.stdout and "skipped" in result.stdout
    captions, problems = read_captions(data, CaptionFormat.CSV)
    assert not problems
    assert set(captions) == {"a.png", "b.jpg", "10_x/c.png"}
    assert all(captions.values()) and all("[DEC]" not in c for c in captions.values())
    run_dir = tmp_path / "runs" / "label-1"
    lines = {line["file"]: line for line in read_jsonl(run_dir / "captions.jsonl")}
    assert lines["broken.png"]["new"] is None and "error" in lines["broken.png"]
    assert lines["a.png"]["old"] is None and lines["a.png"]["new"] == captions["a.png"]
    status = read_status(run_dir)
    assert (status["state"], status["step"], status["total_steps"], status["skipped"]) == ("completed", 4, 4, 1)
    warnings = [e for e in read_jsonl(run_dir / "events.jsonl") if e["kind"] == "warning"]
    assert any("broken.png" in e["message"] for e in warnings)
    assert "captioned" in (run_dir / "train.log").read_text()


def test_blip_replace_selected_images_jsonl_with_trigger(tmp_path, models):
    data = tmp_path / "data"
    _images(data, {"a.png": RED, "b.png": BLUE, "c.png": RED})
    write_captions(data, {"a.png": "old a", "b.png": "old b", "c.png": "old c"}, CaptionFormat.JSONL)
    selection = tmp_path / "selection.txt"
    selection.write_text(f"a.png\n# a comment\n{data / 'c.png'}\n")
    _ok(_label("--input", str(data), "--model", str(models["blip"]), "--mode", "replace", "--trigger", "zz",
               "--images", str(selection), "--max-new-tokens", "6"))
    captions, _ = read_captions(data, CaptionFormat.JSONL)
    assert captions["b.png"] == "old b"
    for key in ("a.png", "c.png"):
        assert captions[key].startswith("zz, ") and "old" not in captions[key]
        assert captions[key].count("zz") == 1


# -- bad input ---------------------------------------------------------------------------

def test_missing_model_files_are_named(tmp_path, models):
    data = tmp_path / "data"
    _images(data, {"a.png": RED})
    tagger = tmp_path / "tagger"
    tagger.mkdir()
    shutil.copy(models["wd14"] / "model.onnx", tagger)
    result = _label("--input", str(data), "--model", str(tagger))
    assert result.returncode == 2
    assert "selected_tags.csv" in result.stderr and str(tagger) in result.stderr
    blip = tmp_path / "blip"
    shutil.copytree(models["blip"], blip)
    (blip / "model.safetensors").unlink()
    (blip / "processor_config.json").unlink()
    result = _label("--input", str(data), "--model", str(blip), "--batch-size", "0")
    assert result.returncode == 2
    assert "model.safetensors" in result.stderr and "processor_config.json" in result.stderr
    assert "--batch-size" in result.stderr  # every problem at once
    assert not (data / "a.txt").exists()


def test_no_model_anywhere_says_to_pass_model(tmp_path):
    data = tmp_path / "data"
    _images(data, {"a.png": RED})
    result = _label("--input", str(data))
    assert result.returncode == 2
    assert "--model" in result.stderr and "models/captioners" in result.stderr


def test_bad_selection_and_caption_file_are_reported(tmp_path, models):
    data = tmp_path / "data"
    _images(data, {"a.png": RED})
    (data / "metadata.csv").write_text('filename,prompt\na.png,"never closed\n')
    selection = tmp_path / "sel.txt"
    selection.write_text("a.png\nmissing.png\n../escape.png\n")
    result = _label("--input", str(data), "--model", str(models["wd14"]), "--images", str(selection))
    assert result.returncode == 2
    assert f"{selection}:2" in result.stderr and f"{selection}:3" in result.stderr
    assert "metadata.csv:2" in result.stderr
    assert (data / "metadata.csv").read_text() == 'filename,prompt\na.png,"never closed\n'


# -- stopping ----------------------------------------------------------------------------

SLOW_JOB_IMAGES = 120  # one image per batch: several seconds even on a fast machine

def _start_slow_job(tmp_path: Path, models: dict[str, Path]) -> tuple[subprocess.Popen, Path, Path]:
    data = tmp_path / "data"
    _images(data, {f"i{i:03d}.png": (i * 2, 0, 255 - i * 2) for i in range(SLOW_JOB_IMAGES)})
    run_dir = tmp_path / "job"
    run_dir.mkdir()
    (run_dir / "STOP").write_text("")  # left over from an earlier job: must not stop this one
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "label", "--input", str(data), "--model",
                             str(models["blip"]), "--batch-size", "1", "--max-new-tokens", "40",
                             "--run-dir", str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        status = read_status(run_dir) or {}
        if status.get("state") == "training" and status.get("step", 0) >= 1:
            return proc, data, run_dir
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the job never started captioning")


@pytest.mark.parametrize("how", ["stop-file", "sigterm"])
def test_stop_keeps_what_is_done(tmp_path, models, how):
    proc, data, run_dir = _start_slow_job(tmp_path, models)
    if how == "stop-file":
        (run_dir / "STOP").write_text("")
    else:
        proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    status = read_status(run_dir)
    assert status["state"] == "stopped" and 1 <= status["step"] < SLOW_JOB_IMAGES
    written = sorted(p.name for p in data.glob("*.txt"))
    assert 1 <= len(written) == status["written"] < SLOW_JOB_IMAGES
    assert len(read_jsonl(run_dir / "captions.jsonl")) == status["step"]
    assert "stopped on request" in output
