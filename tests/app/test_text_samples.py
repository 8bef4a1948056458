"""A language model's samples in the monitor: its greedy answers as text cards by step and prompt."""

from __future__ import annotations

import pytest
from app_helpers import screenshot

from tests.cli_helpers import trainer_cli
from tests.llm.test_train import write_config, write_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-samples")
    model = folder / "model"
    assert trainer_cli("make-tiny-model", str(model), "--family", "llama").returncode == 0
    data = write_rows(folder / "train.jsonl", "alpaca", count=16)
    config = write_config(folder, model / "llama", data, folder / "run", epochs=2, save_steps=0, max_new_tokens=12,
                          sample_prompts=["Name colour number 2.", "Name colour number 3."], sample_every_n_steps=4)
    result = trainer_cli("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return folder / "run"


def test_the_samples_tab_shows_each_answer_as_text_by_step_and_prompt(qtbot, tmp_path, text_run):
    from PySide6.QtWidgets import QPlainTextEdit

    from lora_studio.monitor.monitor_page import MonitorPage
    from lora_studio.targets.api import TargetContext
    from lora_studio.targets.model import TargetSettings
    from lora_studio.workers.tasks import TaskRunner
    from lora_studio.workers.thumbnails import ThumbnailLoader

    context = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    runner, thumbnails = TaskRunner(), ThumbnailLoader(tmp_path / "thumbs")
    page = MonitorPage(runner, thumbnails, context=lambda: context, refresh_ms=200, runs_refresh_ms=500)
    qtbot.addWidget(page)
    page.resize(1400, 860)
    page.show()
    page.show_run(text_run)
    table = page.samples.table
    qtbot.waitUntil(lambda: table.rowCount() == 2 and table.columnCount() == 2, timeout=20_000)
    answers = {(text_run / "samples" / f"step-{step:08d}_p{p:02d}.txt").read_text() for step in (4, 8) for p in (0, 1)}
    shown = {table.item(row, column).data(256 + 1) for row in range(2) for column in range(2)}
    assert shown == answers  # each card holds its file's answer
    assert table.verticalHeaderItem(0).text() == "step 8"  # newest on top
    page.tabs.setCurrentWidget(page.samples)
    screenshot(page, "monitor_text_samples")
    table.setCurrentCell(0, 0)
    table.item(0, 1).setSelected(True)
    dialog = page.samples._show([table.item(0, 0), table.item(0, 1)])
    bodies = dialog.findChildren(QPlainTextEdit)
    assert [b.toPlainText() for b in bodies] == [table.item(0, 0).data(256 + 1), table.item(0, 1).data(256 + 1)]
    dialog.close()
    page.set_workspace(None)
    assert runner.pool.waitForDone(30_000)
    thumbnails.stop()
