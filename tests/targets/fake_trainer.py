"""A stand-in for `python -m trainer train` in the stop tests: starts in a blink and can be told
(FAKE_TRAINER_MODE) to obey the STOP file, to ignore it but honour SIGTERM, or to ignore both."""

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

mode = os.environ.get("FAKE_TRAINER_MODE", "obey")
run = Path.cwd()
state = {"state": "training", "step": 0, "pid": os.getpid(), "host": socket.gethostname()}
terminated = False


def on_term(signum, frame):
    global terminated
    terminated = True


signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)


def write(**changes):
    state.update(changes, heartbeat=time.time())
    tmp = run / ".status.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, run / "status.json")


print("fake trainer", sys.argv[1:], flush=True)
while True:
    write(step=state["step"] + 1)
    if terminated or (mode == "obey" and (run / "STOP").exists()):
        write(state="stopped")
        sys.exit(0)
    time.sleep(0.1)
