"""Filters over the caption model: text, regex, missing caption, has tag, problem images."""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from ..tags import split_tags
from .roles import CAPTION_ROLE, PROBLEM_ROLE, REL_ROLE


@dataclass(frozen=True)
class Filter:
    """What the user asked to see; an empty filter shows everything."""

    text: str = ""
    regex: bool = False
    missing_caption: bool = False
    tag: str = ""
    problems_only: bool = False


class CaptionFilterProxy(QSortFilterProxyModel):
    """Rows matching the current ``Filter`` (text matches file name or caption)."""

    @classmethod
    def over(cls, model, parent) -> "CaptionFilterProxy":
        """A proxy filtering ``model`` (owned by ``parent``)."""
        proxy = cls(parent)
        proxy.setSourceModel(model)
        return proxy

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._filter = Filter()
        self._pattern: re.Pattern[str] | None = None
        self.filter_error: str | None = None
        self.setSortRole(Qt.ItemDataRole.DisplayRole)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    @property
    def current(self) -> Filter:
        """The filter in effect."""
        return self._filter

    def set_filter(self, new: Filter) -> None:
        """Apply ``new``; an invalid regex shows nothing and sets ``filter_error``."""
        self.filter_error = None
        self._pattern = None
        if new.text and new.regex:
            try:
                self._pattern = re.compile(new.text, re.IGNORECASE)
            except re.error as exc:
                self.filter_error = f"Invalid regular expression: {exc}"
        self.beginFilterChange()
        self._filter = new
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        """Whether a row passes every active part of the filter."""
        f = self._filter
        if not (f.text or f.missing_caption or f.tag or f.problems_only):
            return True
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        caption: str = model.data(index, CAPTION_ROLE) or ""
        if f.missing_caption and caption.strip():
            return False
        if f.problems_only and not model.data(index, PROBLEM_ROLE):
            return False
        if f.tag and f.tag not in split_tags(caption):
            return False
        if f.text:
            rel: str = model.data(index, REL_ROLE) or ""
            if f.regex:
                if self._pattern is None:
                    return False
                return bool(self._pattern.search(caption) or self._pattern.search(rel))
            needle = f.text.casefold()
            return needle in caption.casefold() or needle in rel.casefold()
        return True
