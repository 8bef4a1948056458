"""Auto-captioning throughput: does image loading make the captioner wait?

For each captioner family, on the tiny models of :mod:`trainer.labeling.tiny`, measured in
one run (these machines are noisy, so only ratios within a run mean much):

- real_images_per_s: the job's own path (:class:`trainer.labeling.job.LabelJob`): JPEG decode
  (at 1/2, 1/4 or 1/8 scale when the image is at least that much larger than the model's
  input, see ``trainer.images.open_rgb(min_side=...)``), EXIF/RGB handling and the model's preprocessing in the loader threads, batches to the model;
- preloaded_images_per_s: the same batches with every image already decoded and prepared in
  memory (the model alone);
- data_stall_ratio: real / preloaded (1.0 means loading costs nothing; target >= 0.90, i.e.
  within 10%);
- loader_images_per_s: the loader threads alone (decode + preprocess, no model): the most any
  model can get from this machine's CPUs. When a model is faster than that (the tiny tagger is
  one linear layer), the ratio measures the CPU, not a stall the job could avoid.

A third entry per captioner, ``<name>_gpu_like``, keeps its real loading path but replaces the
model call by a wait of ``--simulated-ms`` per image that holds no CPU (what a GPU kernel does):
on a CPU-only machine the model and the loader share the cores, so only this entry shows
whether the loader can keep a GPU fed. It says nothing about the model's own speed.

Each path runs three times, interleaved, and the faster run counts (other work on the machine
otherwise decides which path "wins").

The tiny models take the real models' input sizes (BLIP 384 px, WD14 448 px), so decoding and
preprocessing cost what they cost in real use, but their compute is far below a real model's
(BLIP-base, a WD14 ViT): this is the hard case for the loader, a real model leaves it more time
per image. Model loading is not timed.

Usage: python bench/label_throughput.py [--quick] ; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` noisy JPEGs (noise makes decoding cost what a photo costs)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        pixels[:, :, i % 3] = 200  # a dominant colour, so the tagger's colour tags vary
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


class SimulatedAccelerator:
    """A captioner's preprocessing with a model call that waits off-CPU, like a GPU."""

    def __init__(self, captioner, ms_per_image: float) -> None:
        self.captioner = captioner
        self.ms_per_image = ms_per_image
        self.prepare = captioner.prepare
        self.collate = captioner.collate
        self.input_side = captioner.input_side

    def generate(self, batch) -> list[list[str]]:
        count = len(batch) if not isinstance(batch, dict) else len(next(iter(batch.values())))
        time.sleep(self.ms_per_image * count / 1000.0)  # sleeping releases the GIL and the core
        return [["x"] for _ in range(count)]

    def free_memory(self) -> None:
        pass


def measure(captioner, paths: list[Path], batch_size: int, workers: int | None) -> dict:
    """Images/s through the real loading path and with prepared images in memory."""
    from trainer.images import open_rgb
    from trainer.labeling.job import LabelJob, WorkItem
    from trainer.labeling.loader import PrefetchLoader

    items = [WorkItem(p.name, p, None) for p in paths]
    prepared = [captioner.prepare(open_rgb(p)) for p in paths]
    batches = [captioner.collate(prepared[i:i + batch_size]) for i in range(0, len(prepared), batch_size)]
    captioner.generate(batches[0])  # warm-up: first calls allocate and pick kernels

    def real_path() -> float:
        started = time.perf_counter()
        outcome = LabelJob(captioner, items, batch_size=batch_size, workers=workers).run()
        assert len(outcome.results) == len(paths), outcome.skipped
        return time.perf_counter() - started

    def preloaded_path() -> float:
        started = time.perf_counter()
        for batch in batches:
            captioner.generate(batch)
        return time.perf_counter() - started

    def loader_only() -> float:
        started = time.perf_counter()
        for _ in PrefetchLoader([(p.name, p) for p in paths], captioner.prepare, workers=workers,
                                min_side=captioner.input_side):
            pass
        return time.perf_counter() - started

    runs: dict[str, list[float]] = {"real": [], "preloaded": [], "loader": []}
    for _ in range(3):
        runs["real"].append(real_path())
        runs["preloaded"].append(preloaded_path())
        runs["loader"].append(loader_only())
    real, preloaded, loader = (len(paths) / min(runs[k]) for k in ("real", "preloaded", "loader"))
    return {"real_images_per_s": round(real, 2), "preloaded_images_per_s": round(preloaded, 2),
            "data_stall_ratio": round(real / preloaded, 3), "loader_images_per_s": round(loader, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller images (about a minute)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="loader threads (default: the job's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the generated JPEGs (default 512 quick, 768 full; photos are often 2048+)")
    parser.add_argument("--simulated-ms", type=float, default=10.0,
                        help="model time per image of the *_gpu_like entries (10 ms: 100 images/s)")
    args = parser.parse_args()
    count, size = (96, 512) if args.quick else (256, 768)
    size = args.image_size or size

    from trainer.labeling.base import LoadOptions
    from trainer.labeling.loader import default_workers, model_threads
    from trainer.labeling.registry import load_captioner
    from trainer.labeling.tiny import make_tiny_captioners

    workers = args.workers or default_workers(args.device)
    # The GPU-like entries use the loader threads the job would use with a GPU.
    gpu_workers = args.workers or default_workers("cuda")
    result: dict = {"images": count, "image_size": size, "batch_size": args.batch_size, "workers": workers,
                    "workers_gpu_like": gpu_workers,
                    "device": args.device, "simulated_ms_per_image": args.simulated_ms}
    with tempfile.TemporaryDirectory() as tmp:
        models = make_tiny_captioners(Path(tmp) / "models", realistic_inputs=True)
        paths = make_images(Path(tmp) / "images", count, size)
        for name, folder in models.items():
            options = LoadOptions(device=args.device, max_new_tokens=20,
                                  cpu_threads=model_threads(workers) if args.device == "cpu" else None)
            captioner = load_captioner(folder, options)
            result[name] = measure(captioner, paths, args.batch_size, workers)
            result[f"{name}_gpu_like"] = measure(SimulatedAccelerator(captioner, args.simulated_ms), paths,
                                                 args.batch_size, gpu_workers)
            captioner.close()
            for key in (name, f"{name}_gpu_like"):
                r = result[key]
                print(f"{key}: real path {r['real_images_per_s']} images/s, preloaded {r['preloaded_images_per_s']} "
                      f"images/s, ratio {r['data_stall_ratio']}; loader alone {r['loader_images_per_s']} images/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
