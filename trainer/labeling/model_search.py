"""Find the captioner to use when ``--model`` is not given (torch-free).

A workspace keeps its captioners in ``models/captioners/<name>/``. The seed's command names
only the dataset, so the folder is looked for next to the dataset and in the folders above
it; exactly one captioner there is used, anything else asks for ``--model``.
"""

from __future__ import annotations

from pathlib import Path

from trainer.labeling.errors import LabelInputError

CAPTIONERS_DIR = Path("models") / "captioners"
MAX_LEVELS_UP = 6  # a workspace is a few folders above its datasets, not the whole disk


def captioners_dirs(dataset: Path) -> list[Path]:
    """``models/captioners`` folders in ``dataset`` and its parents, nearest first."""
    found = []
    folder = dataset.resolve()
    for _ in range(MAX_LEVELS_UP + 1):
        candidate = folder / CAPTIONERS_DIR
        if candidate.is_dir():
            found.append(candidate)
        if folder.parent == folder:
            break
        folder = folder.parent
    return found


def default_model(dataset: Path) -> Path:
    """The single captioner folder of the nearest ``models/captioners``; else a clear error."""
    dirs = captioners_dirs(dataset)
    if not dirs:
        raise LabelInputError(
            f"no --model given and no {CAPTIONERS_DIR.as_posix()}/ folder next to or above the dataset",
            "pass --model PATH (a BLIP folder, or a WD14 tagger folder with model.onnx and selected_tags.csv), "
            f"or put the captioner in <workspace>/{CAPTIONERS_DIR.as_posix()}/<name>/", str(dataset))
    nearest = dirs[0]
    models = sorted(p for p in nearest.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if len(models) == 1:
        return models[0]
    if not models:
        raise LabelInputError("holds no captioner folder", "copy a captioner into it or pass --model PATH",
                              str(nearest))
    names = ", ".join(p.name for p in models)
    raise LabelInputError(f"holds several captioners ({names})", "choose one with --model PATH", str(nearest))
