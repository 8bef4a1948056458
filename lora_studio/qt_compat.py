"""A guard against a reference-counting bug of shiboken6 6.12 on CPython 3.11 and older.

shiboken6 6.12 hands ``None`` back to Python without a new reference from every C++
method that returns ``void`` and from every invalid ``QVariant`` (an item model's
``data()`` for a role it does not serve): on Python 3.12+ that is harmless, because
``None``, ``True`` and ``False`` are immortal there, but on 3.11 each call takes one
reference from ``None`` that was never given. ``None`` starts with about 5,000
references, so a grid of 10,000 images crashes the interpreter within seconds
("Fatal Python error: none_dealloc"); seen in ``bench/grid_scale.py``, reproduced by
``tests/app/test_qt_compat.py``.

The fix does what Python 3.12 does: it gives these singletons so many references that
no number of stolen ones can bring them to zero. They are never freed in any case.
"""

from __future__ import annotations

import ctypes
import sys

_EXTRA_REFERENCES = 1 << 40
_protected = False


def protect_singletons() -> None:
    """Make None/True/False effectively immortal on Python < 3.12 (idempotent)."""
    global _protected  # noqa: PLW0603 - a once-only latch, set at import time
    if _protected or sys.version_info >= (3, 12):
        return
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object, at the object's address.
        ctypes.c_ssize_t.from_address(id(obj)).value += _EXTRA_REFERENCES
    _protected = True
