"""The queue of runs across targets: state in the run folders on the share, starts claimed by atomic create.

Free of Qt and torch, so that the app's workers, a script or a test process can use it alike.
Nothing runs by itself: queued runs are sent by a :func:`.dispatch.dispatch` pass, which the app
makes every few seconds while it is open (any desk with the workspace open sends them).

- :mod:`.queue` - ``queue.json`` and ``queued-config.yaml`` in a run folder: queue, list, move, cancel, queue again;
- :mod:`.claim` - the claim file (``O_CREAT | O_EXCL``) that one desk at a time holds to change or start a queued run;
- :mod:`.fit` - what a run needs (GPU, memory) and what a target has (the GPUs its doctor reported);
- :mod:`.dispatch` - a pass over the queue: each waiting run, in order, to the first free target that fits;
- :mod:`.ahead` - the next run of a target whose job ends soon, preflighted while that job ends;
- :mod:`.api` - what the app calls: Start now or queue, the starter of queued runs, the Fleet view's snapshot;
- :mod:`.recovery_pass` - automatic recovery: a lost run (:mod:`.lost`; vCenter's word from :mod:`.vm_watch`)
  started again, once, on its own target or another (:mod:`.recovery_place`, :mod:`.restart_config`),
  with the settings of :mod:`.recovery_settings`.
"""

from .ahead import StartsAhead
from .api import (FleetSnapshot, QueueRow, StartDecision, ahead_preparer, fleet_pass, fleet_snapshot, queued_launcher,
                  start_or_queue)
from .claim import Claim, ClaimHeld, this_desk
from .dispatch import Outcome, StartResult, TargetLoad, dispatch
from .errors import QueueError
from .fit import GpuNote, Needs, load_gpu_notes, needs_for, note_gpus
from .queue import QueueEntry, cancel, enqueue, list_queue, move, requeue
from .recovery_pass import RecoveryOutcome, recovery_pass
from .recovery_settings import RecoverySettings

__all__ = [
    "Claim", "ClaimHeld", "FleetSnapshot", "GpuNote", "Needs", "Outcome", "QueueEntry", "QueueError", "QueueRow",
    "StartDecision", "StartResult", "TargetLoad", "cancel", "dispatch", "enqueue", "fleet_pass", "fleet_snapshot", "list_queue",
    "load_gpu_notes", "move", "needs_for", "note_gpus", "queued_launcher", "requeue", "start_or_queue", "this_desk",
    "RecoveryOutcome", "RecoverySettings", "recovery_pass", "StartsAhead", "ahead_preparer",
]
