"""One desk of the race test: dispatch passes over the shared queue until nothing waits, with a start
that only appends a line to the run folder's starts.log (so a run started twice has two lines).

Run as ``python race_child.py WORKSPACE DESK GO_FILE``; it waits for GO_FILE before its first pass,
so that both desks begin together, and prints how many runs it started.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from lora_studio.fleet import StartResult, dispatch, list_queue
from lora_studio.targets.model import SshTarget


def main() -> int:
    workspace, desk, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    targets = [SshTarget(name=n, host=f"{n}.lab.example", user="trainer", max_jobs=1000) for n in ("gpu-a", "gpu-b")]
    rng = random.Random(desk)

    def start(entry, target):
        with open(entry.run_dir / "starts.log", "a", encoding="utf-8") as log:
            log.write(f"{desk} {target.name} {os.getpid()}\n")
        if rng.random() < 0.3:
            time.sleep(rng.random() / 500)  # a start takes a moment now and then: the other desk gets ahead
        return StartResult(True)

    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.005)
    started = 0
    while any(e.state == "queued" for e in list_queue(workspace)):
        started += sum(1 for o in dispatch(workspace, targets, start, desk) if o.kind == "started")
        if time.monotonic() > deadline:
            return 4
    print(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
