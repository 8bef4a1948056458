"""The run-directory contract as the app reads it: atomic status, tailing, resumed curves."""

from __future__ import annotations

import json
import os
import time

from trainer.checkpoint import write_checkpoint
from trainer.checkpoint import list_checkpoints
from trainer.rundir import JsonlTail, MetricsSeries, RunWriter, is_stale, read_status


def test_writer_keeps_status_current_and_heartbeat_fresh(tmp_path):
    run = RunWriter(tmp_path / "run", "9.9", heartbeat_s=0.05)
    run.start_heartbeat()
    run.set_state("training", step=3, total_steps=10)
    first = read_status(tmp_path / "run")["heartbeat"]
    time.sleep(0.3)
    status = read_status(tmp_path / "run")
    assert status["state"] == "training" and status["step"] == 3 and status["trainer_version"] == "9.9"
    assert status["heartbeat"] > first  # the heartbeat thread kept writing while nothing happened
    run.close()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_stale_heartbeat_means_lost_only_for_active_runs():
    now = time.time()
    assert is_stale({"state": "training", "heartbeat": now - 120}, now)
    assert not is_stale({"state": "training", "heartbeat": now - 1}, now)
    assert not is_stale({"state": "completed", "heartbeat": now - 9999}, now)


def test_tail_skips_half_written_line_and_reads_only_new_bytes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo', encoding="utf-8")
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read_new()] == [1]
    offset = tail.offset
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('ss": 0.4}\n')
    assert [r["step"] for r in tail.read_new()] == [2]
    assert tail.offset > offset and tail.read_new() == []


def test_tail_survives_garbage_and_truncation(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('not json\n{"kind": "checkpoint"}\n', encoding="utf-8")
    tail = JsonlTail(path)
    assert tail.read_new() == [{"kind": "checkpoint"}] and tail.bad_lines == 1
    path.write_text('{"kind": "resume"}\n', encoding="utf-8")  # replaced by a shorter file
    assert tail.read_new() == [{"kind": "resume"}]


def test_metrics_after_resume_keep_newest_line_per_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "loss": 1.0 / s} for s in range(1, 6)]
    lines += [{"step": s, "loss": 2.0} for s in (4, 5, 6)]  # resumed from step 3
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    series = MetricsSeries(path)
    series.refresh()
    assert [r["step"] for r in series.records()] == [1, 2, 3, 4, 5, 6]
    assert series.column("loss")[3:] == [2.0, 2.0, 2.0]


def test_checkpoint_only_counts_when_complete_and_prunes_after(tmp_path):
    def files(folder):
        (folder / "weights.bin").write_bytes(b"x" * 10)

    for step in (10, 20, 30):
        write_checkpoint(tmp_path, step, files, keep_last_n=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000020", "step-00000030"]

    def crash(folder):
        (folder / "weights.bin").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    try:
        write_checkpoint(tmp_path, 40, crash, keep_last_n=2)
    except OSError:
        pass
    # The failed save cleaned up after itself; the older checkpoints are intact.
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000020", "step-00000030"]
    assert not (tmp_path / "checkpoints" / "step-00000040.tmp").exists()
    assert os.path.exists(tmp_path / "checkpoints" / "step-00000030" / "COMPLETE")


def test_tail_of_a_missing_file_is_empty_until_it_appears(tmp_path):
    tail = JsonlTail(tmp_path / "metrics.jsonl")
    assert tail.read_new() == []
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n', encoding="utf-8")
    assert tail.read_new() == [{"step": 1}]
