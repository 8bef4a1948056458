"""Counts in words, the one way the trainer and the app write them: "1 image", "1,234 images".

Torch-free and Qt-free: the app's messages use it as the trainer's do.
"""

from __future__ import annotations


def plural(count: int, word: str, many: str = "") -> str:
    """``count`` and ``word`` agreeing: ``plural(1, "image")`` is "1 image", ``plural(3, "image")`` "3 images",
    ``plural(2, "was", "were")`` "2 were"; thousands are grouped ("1,234")."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
