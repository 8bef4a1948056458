"""Counts, articles and lists in words, the one way the trainer and the app write them: "1 image",
"1,234 images", "an 8 GB GPU", "the UNet, text encoder and VAE", "1.5 GB".

Torch-free and Qt-free: the app's messages use it as the trainer's do.
"""

from __future__ import annotations

from collections.abc import Sequence


def with_article(phrase: str) -> str:
    """``phrase`` after "a" or "an" as it is spoken: "a red circle", "an orange one", "an 8 GB GPU", "a 24 GB GPU"."""
    first = phrase.split(" ", 1)[0]
    if first.isdigit():  # eight, eighty, eleven, eighteen: a vowel sound
        vowel = first.startswith("8") or first in ("11", "18")
    else:
        vowel = first[:1].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {phrase}"


def plural(count: int, word: str, many: str = "") -> str:
    """``count`` and ``word`` agreeing: ``plural(1, "image")`` is "1 image", ``plural(3, "image")`` "3 images",
    ``plural(2, "was", "were")`` "2 were"; thousands are grouped ("1,234")."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def listed(words: Sequence[str]) -> str:
    """``words`` as a sentence lists them: "VAE", "UNet and VAE", "UNet, text encoder and VAE"."""
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def human_size(size: int) -> str:
    """Bytes as a person reads them (1.5 GB, 120 KB)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
