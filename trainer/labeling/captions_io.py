"""Where the captions of a ``label`` job are read from and written to (torch-free).

All reading and writing goes through :mod:`trainer.captions`, so the job writes exactly what
the rest of LoRA Studio reads, atomically, keeping row order and extra columns. Captions are
merged into the file as it is *at write time*: a caption typed by hand while the job ran
is not lost, and "fill" never overwrites it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.captions import CaptionFileError, CaptionFormat, default_metadata_path, detect_format, load_captions
from trainer.labeling.errors import LabelInputError, LabelInputErrors
from trainer.labeling.merge import Mode, merge_caption


@dataclass(frozen=True)
class CaptionTarget:
    """The caption file (or sidecars) a job writes, and where existing captions come from."""

    folder: Path
    fmt: CaptionFormat
    metadata_path: Path | None  # None: .txt sidecars
    # The dataset's current format: used for the existing captions while the target file
    # does not exist yet, so writing a new metadata.csv keeps the .txt captions in it.
    current_fmt: CaptionFormat

    def describe(self) -> str:
        """Where captions go, for messages."""
        return str(self.metadata_path) if self.metadata_path else f".txt files next to the images in {self.folder}"

    def exists(self) -> bool:
        """False while the metadata file is still to be created (sidecars always 'exist')."""
        return self.metadata_path is None or self.metadata_path.exists()


def resolve_target(folder: Path, output: Path | None, fmt: str | None) -> CaptionTarget:
    """The target from ``--output`` / ``--format``, else the dataset's own format."""
    current = detect_format(folder)
    if output is not None:
        suffix = output.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise LabelInputError(
                f"--output must be a .csv or .jsonl file, not {output.name!r}",
                "use --format txt (without --output) for .txt files next to the images", str(output))
        out_fmt = CaptionFormat(suffix[1:])
        if fmt is not None and fmt != out_fmt.value:
            raise LabelInputError(f"--format {fmt} contradicts --output {output.name}",
                                  "give one of the two", str(output))
        if output.is_dir():
            raise LabelInputError("--output is a folder", "name the caption file, e.g. metadata.csv", str(output))
        return CaptionTarget(folder, out_fmt, output.resolve(), current)
    target_fmt = CaptionFormat(fmt) if fmt is not None else current
    return CaptionTarget(folder, target_fmt, default_metadata_path(folder, target_fmt), current)


def read_existing(target: CaptionTarget, images: Sequence[Path]) -> tuple[dict[str, str], list[str]]:
    """Current captions and warnings; :class:`LabelInputErrors` when the file has errors.

    The job refuses to start on a caption file with errors (a row it cannot read, an
    unclosed quote): writing it would risk what is in it, and the user can fix it first.
    """
    if target.exists():
        fmt, path = target.fmt, target.metadata_path
    else:
        fmt = target.current_fmt
        path = default_metadata_path(target.folder, fmt)
    result = load_captions(target.folder, fmt, path, images=images)
    errors = [p for p in result.problems if p.is_error]
    if errors:
        raise LabelInputErrors([
            LabelInputError(p.message, f"{p.hint}; fix this before auto-captioning", p.path, p.line) for p in errors
        ])
    return dict(result.captions), [str(p) for p in result.problems]


def write_results(
    target: CaptionTarget,
    images: Sequence[Path],
    generated: Mapping[str, Sequence[str]],
    mode: Mode | str,
    trigger: str | None,
) -> list[str]:
    """Merge generated captions into the caption file as it is now; returns the images changed."""
    from trainer.captions import write_captions

    captions, _ = read_existing(target, images)
    changed = []
    for rel, parts in generated.items():
        new = merge_caption(captions.get(rel), parts, mode, trigger) if parts else None
        if new is not None and new != (captions.get(rel) or "").strip():
            captions[rel] = new
            changed.append(rel)
    if not changed:
        return []  # nothing to write: leave the file (and its modification time) alone
    try:
        write_captions(target.folder, captions, target.fmt, target.metadata_path)
    except CaptionFileError as exc:
        raise LabelInputErrors([LabelInputError(p.message, p.hint, p.path, p.line) for p in exc.problems]) from exc
    return changed
