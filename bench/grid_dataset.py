"""The grid benchmark's dataset: JPEGs of mixed sizes up to 4000 px with tag captions in a metadata.csv,
and their twin as a kohya ``.txt`` sidecar dataset (the same images, hard-linked).

Run by ``bench/grid_scale.py`` in a child process, so that making the images does not count in the app's
memory: ``python bench/grid_dataset.py FOLDER COUNT`` (the twin goes beside FOLDER, as ``dataset-txt``).
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
from pathlib import Path

SIZES = [(256, 256), (512, 384), (768, 1024), (1024, 1024), (1600, 1200), (2048, 1536), (4000, 3000), (3000, 4000)]
WORDS = ["painting", "portrait", "landscape", "woman", "man", "cat", "dog", "forest", "city", "night", "sunset",
         "red", "blue", "green", "detailed", "masterpiece", "sketch", "photo", "studio lighting", "smiling"]


def generate(folder: Path, count: int) -> None:
    """Write ``count`` JPEGs (a few distinct encodes per size, copied) and a metadata.csv."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    encoded: list[bytes] = []
    for w, h in SIZES:
        for variant in range(2):
            image = Image.new("RGB", (w, h), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            draw = ImageDraw.Draw(image)
            for _ in range(12):
                x, y = rng.randrange(w), rng.randrange(h)
                r = rng.randrange(max(8, w // 10), max(16, w // 3))
                draw.ellipse([x - r, y - r, x + r, y + r], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            encoded.append(buffer.getvalue())
    lines = ["filename,prompt"]
    for i in range(count):
        name = f"img_{i:05d}.jpg"
        # Weighted towards small and medium images, as real datasets are.
        data = encoded[min(len(encoded) - 1, int(rng.random() ** 1.6 * len(encoded)))]
        (folder / name).write_bytes(data)
        tags = rng.sample(WORDS, 6)
        lines.append(f'{name},"{", ".join(tags)}"')
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate_txt_twin(folder: Path, twin: Path) -> None:
    """The same images (hard links) with the same captions as ``.txt`` sidecars."""
    twin.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            name = row["filename"]
            os.link(folder / name, twin / name)
            (twin / name).with_suffix(".txt").write_text(row["prompt"], encoding="utf-8")


def main() -> int:
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    generate(folder, count)
    generate_txt_twin(folder, folder.parent / "dataset-txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
