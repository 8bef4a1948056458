"""bench/fleet.py's figures from run folders (its full run starts sshd servers and trains: see its docstring)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.cli_helpers import ROOT

sys.path.insert(0, str(ROOT))
from bench.fleet import figures  # noqa: E402


def _run(folder: Path, claimed: float, started: float, ended: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "queue.claim").write_text(json.dumps({"time": claimed}))
    (folder / "run.json").write_text(json.dumps({"started_at": started}))
    (folder / "status.json").write_text(json.dumps({"state": "completed", "heartbeat": ended}))
    return folder


def test_efficiency_is_the_ideal_makespan_of_two_targets_over_the_real_one(tmp_path):
    # Two targets, two runs each: 4 s of preflight, then 20 s of training; the second pair waits 1 s.
    runs = [_run(tmp_path / "a1", 0, 4, 24), _run(tmp_path / "b1", 0, 4, 24),
            _run(tmp_path / "a2", 25, 29, 49), _run(tmp_path / "b2", 25, 29, 49)]
    got = figures(runs, started_at=0.0)
    assert got == {"efficiency": round(40 / 49, 3), "makespan_s": 49.0, "ideal_s": 40.0, "run_s": 20.0, "start_s": 4.0,
                   "slot_efficiency": round(48 / 49, 3)}
