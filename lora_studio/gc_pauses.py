"""Keeping Python's garbage collector from freezing the UI while a large dataset is open.

A 10,000-image dataset keeps some 100,000 Python objects alive for as long as it is open
(entries, captions, model rows). Every full collection walks all of them: measured by
``bench/grid_scale.py`` at ~100 ms per pause, several times during a big save, each one
a visible freeze of the UI thread.
"""

from __future__ import annotations

import gc


def settle_long_lived_objects() -> None:
    """Collect once, then exempt everything alive now from later collections.

    Call on the UI thread (a collection may destroy Qt objects, which must happen on the
    thread that owns them) once a dataset is open. Frozen objects are still freed by
    reference counting; unfreezing first lets the previous dataset's cycles be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
