"""Bad input through the real `train` command: every problem listed at once, exit code 2,
and no run folder created."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.cli_helpers import trainer_cli


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _config(folder: Path, base_model: str, **extra: str) -> Path:
    lines = [f"train_data_dir: {folder / 'data'}", f"base_model: {base_model}", f"output_dir: {folder / 'out'}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fake_model(family_model) -> Path:
    """Each registered family's tiny model: the data checks come before it is loaded, and must name
    the same problems whatever the family."""
    return family_model.base_model


def test_every_data_problem_is_listed_and_nothing_is_written(tmp_path, fake_model):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.png", "b.png", "no_caption.png"):
        Image.new("RGB", (64, 64), (200, 10, 10)).save(data / name)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpeg, "JPEG")
    (data / "broken.jpg").write_bytes(jpeg.getvalue()[:200])
    (data / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    (data / "notes.docx").write_bytes(b"not an image, ignored")
    # Excel-style BOM, a quoted caption with a comma and an embedded newline: all valid.
    (data / "metadata.csv").write_text(
        '\ufefffilename,prompt\na.png,"a red, square"\nb.png,"two\nlines"\nghost.png,a ghost\na.png,again\n'
        '../escape.png,evil\nbroken.jpg,broken\nbomb.png,bomb\n', encoding="utf-8")
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(fake_model), max_image_pixels=1_000_000)))
    assert result.returncode == 2
    err = result.stderr
    csv = f"{data / 'metadata.csv'}"
    assert f"{csv}:5: row names 'ghost.png', which does not exist in the dataset folder" in err
    assert f"{csv}:6: 'a.png' is listed twice, on line 2 and on line 6" in err
    assert f"{csv}:7: row names '../escape.png', which escapes the dataset folder" in err
    assert f"{data / 'no_caption.png'}: image has no caption" in err
    assert f"{data / 'broken.jpg'}: is truncated or damaged" in err
    assert f"{data / 'bomb.png'}: is 20000x20000 = 400,000,000 pixels, over the limit" in err and "max_image_pixels" in err
    assert "not starting; fix the problems above" in err
    assert not (tmp_path / "out").exists()


def test_csv_structure_problems_name_the_line(tmp_path, fake_model):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (64, 64)).save(data / "a.png")
    (data / "metadata.csv").write_text("image_name,description\na.png,a cat\n", encoding="utf-8")
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(fake_model))))
    assert result.returncode == 2
    assert "metadata.csv:1:" in result.stderr and "filename" in result.stderr and "prompt" in result.stderr
    (data / "metadata.csv").write_text('filename,prompt\na.png,"never closed\n', encoding="utf-8")
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(fake_model))))
    assert result.returncode == 2 and "metadata.csv:2:" in result.stderr and "quote" in result.stderr
    (data / "metadata.csv").write_bytes(b"filename,prompt\na.png,caf\xe9\n")
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(fake_model))))
    assert result.returncode == 2 and "UTF-8" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, expected", [
    ("model.ckpt", "is a pickle file (.ckpt), and loading a pickle can run any code"),
    ("model.bin", "allow_pickle: true"),
])
def test_pickle_models_are_refused(tmp_path, name, expected):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (64, 64)).save(data / "a.png")
    (data / "a.txt").write_text("a cat", encoding="utf-8")
    (tmp_path / name).write_bytes(b"\x80\x04pickle")
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(tmp_path / name))))
    assert result.returncode == 2 and expected in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_lora_or_sdxl_file_is_not_taken_for_a_base_model(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (64, 64)).save(data / "a.png")
    (data / "a.txt").write_text("a cat", encoding="utf-8")
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(1)}, lora)
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(lora))))
    assert result.returncode == 2 and "looks like a LoRA, not a base model" in result.stderr
    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"conditioner.embedders.0.transformer.x": torch.zeros(1), "model.diffusion_model.x": torch.zeros(1)}, sdxl)
    result = trainer_cli("train", "--config", str(_config(tmp_path, str(sdxl))))
    assert result.returncode == 2 and "SDXL" in result.stderr
    assert not (tmp_path / "out").exists()
