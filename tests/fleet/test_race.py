"""Two desks racing for one queue: two real processes run dispatch passes over the same 100 queued
runs on the same folder at the same moment; the claim by atomic create lets each run start once."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from lora_studio.fleet import Needs, enqueue, list_queue
from lora_studio.fleet.claim import read_claim
from lora_studio.fleet.queue import read_entry

from .helpers import make_workspace, write_config

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("race_child.py")
RUNS = 100


def test_two_desks_racing_for_100_queued_runs_start_each_exactly_once(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    for index in range(RUNS):
        enqueue(write_config(workspace, f"run-{index:03d}"), workspace, Needs(), "desk-that-queued")
    assert len(list_queue(workspace)) == RUNS
    go = tmp_path / "go"
    desks = [subprocess.Popen([sys.executable, str(CHILD), str(workspace), desk, str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for desk in ("desk-1", "desk-2")]
    go.touch()  # both are waiting for it: their first passes begin together
    results = [desk.communicate(timeout=120) for desk in desks]
    for desk, (out, err) in zip(desks, results):
        assert desk.returncode == 0, err
    started_by = [int(out.strip()) for out, _ in results]
    assert sum(started_by) == RUNS, started_by

    runs = sorted((workspace / "runs").iterdir())
    assert len(runs) == RUNS
    starts = {run.name: (run / "starts.log").read_text(encoding="utf-8").splitlines() for run in runs}
    twice = {name: lines for name, lines in starts.items() if len(lines) != 1}
    assert not twice, f"started other than once: {twice}"
    for run in runs:
        entry = read_entry(run)
        desk = starts[run.name][0].split()[0]
        assert entry.state == "started" and entry.started["desk"] == desk, (run.name, entry)
        claim = read_claim(run)  # the claim a start keeps: made once, by the desk that started it
        assert (claim.desk, claim.purpose) == (desk, "start"), (run.name, claim)
    # Each desk's count matches the lines it wrote (nothing started without being recorded, or the reverse).
    by_desk = Counter(lines[0].split()[0] for lines in starts.values())
    assert [by_desk["desk-1"], by_desk["desk-2"]] == started_by
    assert list_queue(workspace) == []
