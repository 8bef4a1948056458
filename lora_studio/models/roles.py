"""Custom item-data roles shared by models, proxies and delegates."""

from PySide6.QtCore import Qt

REL_ROLE = Qt.ItemDataRole.UserRole + 1  # str: the image's path relative to the dataset
CAPTION_ROLE = Qt.ItemDataRole.UserRole + 2  # str: the caption (also for filtering)
PROBLEM_ROLE = Qt.ItemDataRole.UserRole + 3  # str | None: why the image is broken
DIRTY_ROLE = Qt.ItemDataRole.UserRole + 4  # bool: edited but not yet saved
PATH_ROLE = Qt.ItemDataRole.UserRole + 5  # str: absolute path of the image
THUMB_ROLE = Qt.ItemDataRole.UserRole + 6  # QPixmap | None: the thumbnail at cache size (icon view)
