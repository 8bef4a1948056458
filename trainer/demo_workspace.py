"""The demo workspace: generated images with captions, a tiny model and a ready config.

It also holds a small text dataset (``datasets/text-demo/chats.jsonl``: chats about the same
shapes, sharegpt rows) to open in the app's dataset tab; the image demo does not use it.

Creating the images and the config is torch-free (the app calls it); the tiny model is made
by the trainer in a subprocess when torch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from trainer.captions import CaptionFormat, write_captions
from trainer.fsutil import atomic_write_text
from trainer.wording import with_article

DATASET = "datasets/shapes"
TEXT_DATASET = "datasets/text-demo/chats.jsonl"  # a language model's examples (sharegpt), for the app's text view
MODEL_DIR = "models/tiny-sd"
MODEL_FILE = "models/tiny-sd/tiny-sd-v1.safetensors"
CONFIG = "configs/demo.yaml"
RUN_DIR = "runs/shapes-demo"

_COLOURS = {"red": (214, 48, 49), "blue": (9, 132, 227), "green": (0, 184, 148), "yellow": (253, 203, 110),
            "purple": (108, 92, 231), "orange": (225, 112, 85)}
_BACKGROUNDS = {"white": (250, 250, 250), "black": (20, 20, 24), "grey": (150, 150, 150)}
_SHAPES = ("circle", "square", "triangle")


def _draw(shape: str, colour: tuple[int, int, int], background: tuple[int, int, int], size: tuple[int, int],
          rng: random.Random) -> Image.Image:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    r = min(w, h) * rng.uniform(0.25, 0.4)
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image


# The demo's training settings: small enough that the first training on a laptop CPU ends
# in about a minute (64 px on the tiny model). The app offers them as the workspace's
# starting point for New Training, so they live in one place.
DEMO_SETTINGS: dict = {
    "resolution": 64,
    "min_bucket_reso": 32,
    "max_bucket_reso": 128,
    "bucket_reso_steps": 32,
    "lora_rank": 4,
    "batch_size": 4,
    "epochs": 4,
    "learning_rate": 1e-3,
    "save_steps": 10,
    "sample_prompts": ["a red circle on a white background, flat style",
                       "a blue triangle on a black background, flat style"],
    "sample_every_n_steps": 10,
    "sample_steps": 4,
    "sample_width": 64,
    "sample_height": 64,
}


_CORNERS = {"circle": ("no", "one curved side"), "square": ("four", "four equal sides"),
            "triangle": ("three", "three sides")}


def text_demo_rows() -> list[dict]:
    """About twenty sharegpt chats about the demo's shapes: one-turn descriptions and two-turn questions."""
    system = "You describe simple flat shapes in one short sentence."
    rows: list[dict] = []
    for index, (shape, colour) in enumerate(list(zip(_SHAPES * 4, list(_COLOURS) * 2))[:11]):
        background = list(_BACKGROUNDS)[index % len(_BACKGROUNDS)]
        chat = [{"from": "human", "value": f"Describe {with_article(colour)} {shape} on a {background} background."},
                {"from": "gpt", "value": f"A flat {colour} {shape}, centred on a plain {background} background."}]
        row = {"conversations": chat, "id": f"describe-{index:02d}"}
        rows.append({"system": system, **row} if index % 3 == 0 else row)
    for shape, (corners, sides) in _CORNERS.items():
        for colour in list(_COLOURS)[:3]:
            rows.append({"conversations": [
                {"from": "human", "value": f"How many corners does {with_article(colour)} {shape} have?"},
                {"from": "gpt", "value": f"A {shape} has {corners} corners, whatever its colour."},
                {"from": "human", "value": "And how many sides?"},
                {"from": "gpt", "value": f"It has {sides}."}], "id": f"corners-{shape}-{colour}"})
    return rows


def _config_text() -> str:
    header = f"""# The demo: a tiny model learns flat coloured shapes. Train it with:
#   python -m trainer train --config configs/demo.yaml
# Paths are relative to this file's folder.
train_data_dir: ../{DATASET}
metadata_path: ../{DATASET}/metadata.csv
base_model: ../{MODEL_FILE}
output_dir: ../{RUN_DIR}
output_name: shapes-demo
"""
    return header + yaml.safe_dump(DEMO_SETTINGS, sort_keys=False, allow_unicode=True, width=200)


def create_demo_workspace(root: Path, make_model: bool = True, count: int = 36) -> Path:
    """Create (or complete) the demo workspace at ``root``; returns the config's path.

    Existing files are kept, so a user's caption edits in the demo survive a second call.
    """
    root = Path(root)
    dataset = root / DATASET
    dataset.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    captions = {}
    for index in range(count):
        shape = _SHAPES[index % len(_SHAPES)]
        colour = list(_COLOURS)[index % len(_COLOURS)]
        background = list(_BACKGROUNDS)[(index // len(_COLOURS)) % len(_BACKGROUNDS)]
        size = rng.choice([(96, 96), (128, 96), (96, 128), (112, 112)])
        name = f"shape_{index:03d}.png"
        if not (dataset / name).exists():
            _draw(shape, _COLOURS[colour], _BACKGROUNDS[background], size, rng).save(dataset / name)
        captions[name] = f"{with_article(colour)} {shape} on a {background} background, flat style"
    if not (dataset / "metadata.csv").exists():
        write_captions(dataset, captions, CaptionFormat.CSV)
    chats = root / TEXT_DATASET
    if not chats.exists():
        atomic_write_text(chats, "".join(json.dumps(row) + "\n" for row in text_demo_rows()))
    config = root / CONFIG
    if not config.exists():
        atomic_write_text(config, _config_text())
    if make_model and not (root / MODEL_FILE).exists() and importlib.util.find_spec("torch") is not None:
        subprocess.run([sys.executable, "-m", "trainer", "make-tiny-model", str(root / MODEL_DIR)], check=True,
                       stdout=subprocess.DEVNULL)
    return config
