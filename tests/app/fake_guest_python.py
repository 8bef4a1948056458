"""Stands in for ``python -m trainer`` inside a simulated VM, so that a launch through Guest
Operations takes a second: ``doctor`` and ``validate`` answer as a ready trainer VM would, and
``train`` writes a completed status into its run folder (the working directory) and exits.

A target uses it as its Python: ``python = "<sys.executable> tests/app/fake_guest_python.py"``.
"""

import json
import os
import socket
import sys
import time

from trainer import __version__

args = sys.argv[1:]
if args[:2] != ["-m", "trainer"] or len(args) < 3:
    sys.exit(f"usage: {sys.argv[0]} -m trainer COMMAND ...")
command = args[2]
if command == "doctor":
    print(json.dumps({"trainer_version": __version__, "python": sys.version.split()[0], "torch": "2 (stand-in)",
                      "gpus": [{"name": "NVIDIA A100-PCIE-40GB", "free_gb": 39.4}], "disk": {"free_gb": 120.0},
                      "problems": []}))
elif command == "validate":
    print(json.dumps({"ok": True, "images": 3, "problems": []}))
elif command == "train":
    now = time.time()
    status = {"state": "completed", "step": 1, "total_steps": 1, "epoch": 1, "total_epochs": 1, "heartbeat": now,
              "pid": os.getpid(), "host": socket.gethostname(), "error": None, "trainer_version": __version__}
    with open(".status.tmp", "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    os.replace(".status.tmp", "status.json")
    print("stand-in trainer: completed", flush=True)
else:
    sys.exit(f"{command}: not a command of this stand-in")
