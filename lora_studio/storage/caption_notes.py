"""Caption-file problems as the app shows them, plus the notes only an editor needs.

The shared caption module (``trainer.captions``) finds everything that is wrong with a
caption file, in the trainer's words. An editor also tells the user what it will do with
things that are not errors: a BOM it keeps, a caption spread over several lines, a row
for an image that is not in the folder (kept, not shown).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trainer.captions import MetadataDocument, SidecarSet
from trainer.captions import Problem as CaptionProblem

from .problems import Problem


def from_trainer(problem: CaptionProblem) -> Problem:
    """The app's form of a problem reported by the caption module."""
    hint = problem.hint[:1].upper() + problem.hint[1:]
    return Problem(Path(problem.path), problem.line, f"{problem.message}.", f"{hint}.", problem.severity)


def editor_notes(store: MetadataDocument | SidecarSet, images: set[str]) -> Iterator[Problem]:
    """What the app does with the unusual but valid parts of a metadata file."""
    if isinstance(store, SidecarSet) or not store.exists:
        return
    path = store.path
    if store.text_format.bom:
        yield Problem(path, 1, "starts with a byte-order mark (BOM).",
                      "It is kept when saving; the trainer ignores it.", "warning")
    for rel, line in sorted(store.lines.items(), key=lambda item: item[1]):
        if rel not in images:
            yield Problem(path, line, f"is for '{rel}', which does not exist.",
                          "The row is kept in the file and not shown.", "warning")
        elif "\n" in store.captions[rel] or "\r" in store.captions[rel]:
            yield Problem(path, line, f"has a line break inside the caption of '{rel}'.",
                          "It is kept; most trainers read the caption as one line.", "warning")
