"""A language model's samples in the monitor: its greedy answers as text cards by step and prompt."""

from __future__ import annotations

import pytest
from app_helpers import screenshot

pytestmark = pytest.mark.slow


def test_the_samples_tab_shows_each_answer_as_text_by_step_and_prompt(qtbot, monitor_page, llm_alpaca_run):
    from PySide6.QtWidgets import QPlainTextEdit

    from lora_studio.monitor.samples_view import TEXT_ROLE

    page = monitor_page
    text_run = llm_alpaca_run[2]  # 15 steps, two prompts answered every 5
    page.show_run(text_run)
    table = page.samples.table
    qtbot.waitUntil(lambda: table.rowCount() == 3 and table.columnCount() == 2, timeout=20_000)
    for row, step in enumerate((15, 10, 5)):  # newest on top
        assert table.verticalHeaderItem(row).text() == f"step {step}"
        for column in range(2):  # each card holds its file's answer
            answer = (text_run / "samples" / f"step-{step:08d}_p{column:02d}.txt").read_text()
            assert table.item(row, column).data(TEXT_ROLE) == answer
    page.tabs.setCurrentWidget(page.samples)
    screenshot(page, "monitor_text_samples")
    table.setCurrentCell(0, 0)
    table.item(0, 1).setSelected(True)
    dialog = page.samples._show([table.item(0, 0), table.item(0, 1)])
    bodies = dialog.findChildren(QPlainTextEdit)
    assert [b.toPlainText() for b in bodies] == [table.item(0, 0).data(TEXT_ROLE), table.item(0, 1).data(TEXT_ROLE)]
    dialog.close()
