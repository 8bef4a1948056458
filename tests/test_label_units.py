"""The pieces of `trainer label` in-process: caption merging, tag selection, batching, loading."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_helpers import ROOT
from trainer.labeling.base import Captioner, LoadOptions, is_out_of_memory
from trainer.labeling.errors import LabelFailure, LabelInputError
from trainer.labeling.job import LabelJob, WorkItem
from trainer.labeling.loader import PrefetchLoader
from trainer.labeling.merge import merge_caption, needs_caption, tag_key
from trainer.labeling.model_search import default_model
from trainer.labeling.wd14 import Tag, caption_tag, select_tags

# -- merging -------------------------------------------------------------------------------

@pytest.mark.parametrize("existing, mode, expected", [
    (None, "fill", "zz, a cat"),
    ("  ", "fill", "zz, a cat"),
    ("mine", "fill", None),
    ("mine", "replace", "zz, a cat"),
    ("mine", "append", "zz, mine, a cat"),
    ("zz, mine", "append", "zz, mine, a cat"),
    ("zz, mine", "prepend", "zz, a cat, mine"),
    ("mine", "prepend", "zz, a cat, mine"),
    ("zz, mine, a cat", "append", "zz, mine, a cat"),  # nothing new: unchanged
    (None, "append", "zz, a cat"),
])
def test_merge_modes_and_trigger(existing, mode, expected):
    assert merge_caption(existing, ["a cat"], mode, "zz") == expected


def test_merge_dedupes_tags_and_trigger():
    assert merge_caption(None, ["zz", "long_hair", "Long hair", "solo"], "replace", "zz") == "zz, long_hair, solo"
    assert merge_caption("solo, long hair", ["long_hair", "smile"], "append") == "solo, long hair, smile"
    assert needs_caption("x", "fill") is False and needs_caption("x", "append") is True


# -- tags ------------------------------------------------------------------------------------

def test_select_tags_thresholds_categories_and_order():
    tags = [Tag("general", 9), Tag("sensitive", 9), Tag("solo", 0), Tag("smile", 0), Tag("miku", 4)]
    scores = [0.3, 0.6, 0.5, 0.9, 0.86]
    options = LoadOptions(general_threshold=0.4, character_threshold=0.85)
    assert select_tags(scores, tags, options) == ["smile", "miku", "solo"]
    options = LoadOptions(general_threshold=0.4, character_threshold=0.9, rating=True, exclude=frozenset({"smile"}))
    assert select_tags(scores, tags, options) == ["sensitive", "solo"]
    kaomoji = [Tag("^_^", 0), Tag("long hair", 0)]
    options = LoadOptions(general_threshold=0.1, exclude=frozenset({tag_key("^_^"), tag_key("Long_Hair")}))
    assert select_tags([0.9, 0.9], kaomoji, options) == []
    assert caption_tag("long_hair") == "long hair" and caption_tag("^_^") == "^_^"


# -- the job loop with a fake model ---------------------------------------------------------

class FakeCaptioner(Captioner):
    """Captions each image with its width; runs out of memory above ``max_batch`` images."""

    family = "fake"

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def prepare(self, image):
        self.threads.add(threading.current_thread().name)
        return image.width

    def collate(self, prepared):
        return list(prepared)

    def generate(self, batch):
        if len(batch) > self.max_batch:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(len(batch))
        return [[f"w{width}"] for width in batch]


def _items(folder: Path, count: int, broken: int | None = None) -> list[WorkItem]:
    items = []
    for i in range(count):
        path = folder / f"{i:02d}.png"
        if i == broken:
            path.write_bytes(b"nope")
        else:
            Image.new("RGB", (10 + i, 8)).save(path)
        items.append(WorkItem(path.name, path, None))
    return items


def test_out_of_memory_halves_the_batch_and_keeps_every_image(tmp_path):
    captioner = FakeCaptioner(max_batch=2)
    job = LabelJob(captioner, _items(tmp_path, 11, broken=4), batch_size=8, workers=2)
    outcome = job.run()
    assert job.batch_size == 2 and max(captioner.batches) == 2
    assert [r.new for r in outcome.results] == [f"w{10 + i}" for i in range(11) if i != 4]
    assert [Path(p.path).name for p in outcome.skipped] == ["04.png"]
    assert captioner.threads and all(name.startswith("label-load") for name in captioner.threads)


def test_out_of_memory_at_one_image_says_what_to_do(tmp_path):
    with pytest.raises(LabelFailure) as info:
        LabelJob(FakeCaptioner(max_batch=0), _items(tmp_path, 3), batch_size=2).run()
    assert "--device cpu" in info.value.hint


def test_stop_request_ends_after_the_current_batch(tmp_path):
    calls = []
    job = LabelJob(FakeCaptioner(max_batch=8), _items(tmp_path, 10), batch_size=2,
                   stop_requested=lambda: bool(calls), on_batch=lambda outcome: calls.append(outcome.done))
    outcome = job.run()
    assert outcome.stopped and len(outcome.results) == 2


def test_loader_keeps_order_and_reports_problems(tmp_path):
    items = _items(tmp_path, 6, broken=2)
    loaded = list(PrefetchLoader([(i.rel_path, i.path) for i in items], lambda im: im.width, workers=3, lookahead=2))
    assert [entry.index for entry in loaded] == list(range(6))
    assert loaded[2].problem is not None and loaded[3].prepared == 13


def test_is_out_of_memory():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# -- model lookup ------------------------------------------------------------------------------

def test_default_model_lookup(tmp_path):
    data = tmp_path / "ws" / "data" / "set"
    data.mkdir(parents=True)
    captioners = tmp_path / "ws" / "models" / "captioners"
    with pytest.raises(LabelInputError, match="no --model"):
        default_model(data)
    (captioners / "blip").mkdir(parents=True)
    assert default_model(data) == (captioners / "blip").resolve()
    (captioners / "wd14").mkdir()
    with pytest.raises(LabelInputError, match="several captioners"):
        default_model(data)


def test_light_modules_import_without_torch():
    """The app may import the options, the merge rules and the CLI planning without torch."""
    blocker = "import sys\n" + "".join(f"sys.modules[{lib!r}] = None\n"
                                       for lib in ("torch", "transformers", "onnxruntime", "diffusers"))
    modules = ("trainer.labeling.args", "trainer.labeling.merge", "trainer.labeling.cli", "trainer.labeling.registry",
               "trainer.labeling.captions_io", "trainer.labeling.reporter", "trainer.labeling.wd14",
               "trainer.labeling.image_to_text")
    code = blocker + "".join(f"import {m}\n" for m in modules) + "print('ok')\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# -- the other image-to-text families (best effort: they load and caption offline) -----------

@pytest.mark.parametrize("family", ["blip", "git", "blip2"])
def test_image_to_text_families_load_offline_and_caption(tmp_path, family):
    from trainer.labeling import tiny
    from trainer.labeling.registry import load_captioner

    folder = {"blip": tiny.make_tiny_blip, "git": tiny.make_tiny_git, "blip2": tiny.make_tiny_blip2}[family](
        tmp_path / family)
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (30, 50), (0, 0, 255))]
    for prompt in (None, "a photo of"):
        captioner = load_captioner(folder, LoadOptions(max_new_tokens=5, prompt=prompt))
        # The processor's input size is known, so the loader can decode big JPEGs smaller.
        assert isinstance(captioner.input_side, int) and captioner.input_side > 0
        captions = captioner.generate(captioner.collate([captioner.prepare(image) for image in images]))
        assert len(captions) == 2 and all(len(parts) == 1 for parts in captions)
        if prompt and family != "blip2":  # the random BLIP-2 may end at once; its prompt path still ran
            assert all(parts[0].startswith(prompt) for parts in captions), captions
        captioner.close()


# -- writing into the caption file as it is at write time -------------------------------------

def test_write_results_keeps_captions_typed_while_the_job_ran(tmp_path):
    from trainer.captions import CaptionFormat, read_captions, write_captions
    from trainer.dataset_scan import find_images
    from trainer.labeling.captions_io import resolve_target, write_results

    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    write_captions(tmp_path, {"a.png": ""}, CaptionFormat.CSV)
    target = resolve_target(tmp_path, None, None)
    # The job captioned both; meanwhile someone typed a caption for a.png in the app.
    write_captions(tmp_path, {"a.png": "typed by hand"}, CaptionFormat.CSV)
    changed = write_results(target, find_images(tmp_path), {"a.png": ["gen a"], "b.png": ["gen b"]}, "fill", "zz")
    assert changed == ["b.png"]
    assert read_captions(tmp_path, CaptionFormat.CSV)[0] == {"a.png": "typed by hand", "b.png": "zz, gen b"}
