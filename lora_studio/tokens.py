"""Counting CLIP tokens without torch or transformers.

Stable Diffusion's text encoder sees at most 77 tokens, two of which are the start and
end markers, so words past the 75th token are silently ignored in training. This module
implements CLIP's byte-pair encoding in pure Python from the tokenizer files the trainer
ships (``trainer/resources/clip_tokenizer``); when they are missing it falls back to an
estimate (about one token per short word, more for long words and punctuation).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

CLIP_TOKEN_LIMIT = 75  # every family so far (SD, SDXL); each says its own in trainer.model_family

# CLIP's pre-tokenizer splits letters, single digits and runs of other symbols; Python's
# `re` has no \p{L}, so "letters" is written as word characters minus digits and '_'.
_PRETOKEN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+",
    re.IGNORECASE,
)


def _tokenizer_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "trainer" / "resources" / "clip_tokenizer"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


class ClipTokenCounter:
    """Counts tokens exactly like CLIP's tokenizer (without the start/end markers)."""

    def __init__(self, folder: Path) -> None:
        merges_text = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split()) for line in merges_text[1:] if line and not line.startswith("#")]
        self._ranks = {pair: i for i, pair in enumerate(merges) if len(pair) == 2}
        self._byte_map = _bytes_to_unicode()
        self._cache: dict[str, int] = {}

    def _bpe_len(self, word: str) -> int:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self._ranks.get(p, 1 << 30))
            if best not in self._ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        if len(self._cache) < 50_000:
            self._cache[word] = len(parts)
        return len(parts)

    def count(self, text: str) -> int:
        """Number of CLIP tokens in ``text``."""
        # transformers' CLIPTokenizer (what the trainer uses) does not unescape HTML
        # entities unless ftfy is installed, so neither do we.
        text = " ".join(text.split()).lower()
        total = 0
        for token in _PRETOKEN.findall(text):
            encoded = "".join(self._byte_map[b] for b in token.encode("utf-8"))
            total += self._bpe_len(encoded)
        return total


def estimate_tokens(text: str) -> int:
    """Rough CLIP token count when the tokenizer files are not available."""
    total = 0
    for token in _PRETOKEN.findall(text.lower()):
        total += 1 if len(token) <= 6 else (len(token) + 3) // 4
    return total


@lru_cache(maxsize=1)
def _counter() -> ClipTokenCounter | None:
    folder = _tokenizer_dir()
    try:
        return ClipTokenCounter(folder)
    except (OSError, ValueError, json.JSONDecodeError):
        return None


def count_tokens(text: str) -> tuple[int, bool]:
    """``(count, exact)``: CLIP's token count, exact when the tokenizer files were found."""
    counter = _counter()
    if counter is None:
        return estimate_tokens(text), False
    return counter.count(text), True


def word_count(text: str) -> int:
    """Words as a person counts them (whitespace and commas separate words)."""
    return len(re.findall(r"[^\s,]+", text))


def token_cutoff(text: str, limit: int = CLIP_TOKEN_LIMIT) -> int | None:
    """Index of the first character whose token falls past ``limit`` (None when all fit).

    Offsets are taken on the text as typed (lower-casing keeps them); the editor uses this
    to grey out the words the text encoder will never see.
    """
    counter = _counter()
    total = 0
    for match in _PRETOKEN.finditer(text.lower()):
        token = match.group()
        if counter is not None:
            encoded = "".join(counter._byte_map[b] for b in token.encode("utf-8"))
            total += counter._bpe_len(encoded)
        else:
            total += 1 if len(token) <= 6 else (len(token) + 3) // 4
        if total > limit:
            return match.start()
    return None
