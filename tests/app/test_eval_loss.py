"""A language model's held-out loss in the monitor: ``eval_loss`` (every ``eval_steps``) as a
dashed curve of its own colour beside the training loss, in the legend only when a run has it."""

from __future__ import annotations

import json

import pytest
from app_helpers import screenshot

pytestmark = pytest.mark.slow


def _legend(plot) -> list[str]:
    return [label.text for _sample, label in plot.legend.items]


def test_the_eval_loss_of_a_text_run_is_a_dashed_curve_with_its_own_colour(qtbot, monitor_page, llm_alpaca_run):
    from PySide6.QtCore import Qt

    page = monitor_page
    text_run = llm_alpaca_run[2]  # 15 steps, 4 rows held out, eval_loss every 5 steps
    records = [json.loads(line) for line in (text_run / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval_loss"] for r in records if "eval_loss" in r}
    assert sorted(evals) == [5, 10, 15]
    page.show_run(text_run)
    plot = page.plot
    qtbot.waitUntil(lambda: text_run.name in plot.curves and len(plot.series[text_run.name]) == 15, timeout=20_000)
    curves = plot.curves[text_run.name]
    qtbot.waitUntil(lambda: curves.eval.isVisible(), timeout=10_000)
    x, y = curves.eval.getData()
    assert list(x) == [5, 10, 15] and list(y) == [evals[5], evals[10], evals[15]]
    pen, loss_pen = curves.eval.opts["pen"], curves.smooth.opts["pen"]
    assert pen.style() == Qt.PenStyle.DashLine and pen.color() != loss_pen.color()
    assert pen.color() != curves.lr.opts["pen"].color()  # not the learning rate's dashes either
    assert f"{text_run.name} eval loss" in _legend(plot)
    # The held-out loss stays in view (it lies above the training loss once the model fits).
    low, high = plot.plot.vb.viewRange()[1]
    assert low <= min(evals.values()) and max(evals.values()) <= high
    screenshot(page, "monitor-eval-loss")


def test_a_run_without_eval_loss_has_no_eval_curve_and_a_resume_cuts_its_points(qtbot, tmp_path):
    from lora_studio.monitor.loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    image = tmp_path / "image.jsonl"
    image.write_text("".join(json.dumps({"step": s, "loss": 1 / s, "lr": 1e-4}) + "\n" for s in range(1, 11)))
    text = tmp_path / "text.jsonl"
    lines = [{"step": s, "loss": 1 / s, "lr": 1e-4, **({"eval_loss": 2 / s} if s % 4 == 0 else {})}
             for s in range(1, 11)]
    text.write_text("".join(json.dumps(r) + "\n" for r in lines))
    plot.add_run("image", image)
    plot.add_run("text", text)
    plot.refresh()
    assert not plot.curves["image"].eval.isVisible() and "image eval loss" not in _legend(plot)
    assert list(plot.curves["text"].eval.getData()[0]) == [4, 8]
    # A resume from step 6 writes steps 7.. again: the old evaluation at 8 is superseded.
    with text.open("a") as handle:
        for s in (7, 8, 9):
            handle.write(json.dumps({"step": s, "loss": 0.5 / s, "lr": 1e-4, **({"eval_loss": 0.3} if s == 9 else {})})
                         + "\n")
    plot.refresh()
    x, y = plot.curves["text"].eval.getData()
    assert list(x) == [4, 9] and list(y) == [0.5, 0.3]
    plot.remove_run("text")
    assert _legend(plot) == ["image loss", "image learning rate"]
    plot.show_lr.setChecked(False)  # the dashed line goes, and its legend entry with it
    assert not plot.curves["image"].lr.isVisible() and _legend(plot) == ["image loss"]
