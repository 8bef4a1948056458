"""The Fleet tab with a queue of a few runs, for a person to look at: ``tests/artifacts/fleet-queue.png``, and
the Runs list with the same queue above the run folders: ``tests/artifacts/runs-queue.png``.

Run it on a real X display (what a user's desktop has)::

    Xvfb :79 -screen 0 1600x1000x24 &
    DISPLAY=:79 QT_QPA_PLATFORM=xcb .venv/bin/python tests/app/fleet_screenshot.py

It builds a workspace in a temporary folder: this computer (no GPU) and three GPU targets, busy
with runs (or with a queued run another desk is starting), a queue of six (waiting for busy
targets, one over two nodes, one also too big for the small GPU, one being started, one whose start failed), and the
note a Start that queued its run shows.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]


def build(root: Path) -> Path:
    """The scene's workspace under ``root`` (the app home beside it)."""
    from app_helpers import write_base_model_header
    from lora_studio.fleet import Needs, enqueue, note_gpus
    from lora_studio.fleet.claim import try_claim
    from lora_studio.fleet import StartResult, dispatch
    from lora_studio.targets_ui.store import gpu_notes_file
    from lora_studio.targets.model import LocalTarget, SshTarget, TargetSettings, VSphereTarget, VCenter, save_settings
    from lora_studio.targets_ui.store import settings_file
    from tests.fleet.helpers import pretend_running, write_config
    from trainer.demo_workspace import create_demo_workspace

    workspace = root / "lora"
    create_demo_workspace(workspace, make_model=False)
    write_base_model_header(workspace / "models" / "tiny-sd" / "tiny-sd-v1.safetensors")
    save_settings(settings_file(), TargetSettings(
        vcenters=[VCenter(name="vc-lab", host="vc.lab.example", user="administrator@vsphere.local")],
        targets=[LocalTarget(),
                 SshTarget(name="gpu-01", host="gpu-01.lab.example", user="trainer", max_jobs=2),
                 VSphereTarget(name="lora-trainer-02", vcenter="vc-lab", vm="lora-trainer-02", ssh_user="trainer"),
                 SshTarget(name="gpu-small", host="10.20.0.31", user="trainer")]))
    notes = gpu_notes_file()
    note_gpus(notes, "gpu-01", {"gpus": [{"name": "NVIDIA A100 80GB PCIe", "total_gb": 80.0}] * 2})
    note_gpus(notes, "lora-trainer-02", {"gpus": [{"name": "NVIDIA L40S", "total_gb": 45.0}]})
    note_gpus(notes, "gpu-small", {"gpus": [{"name": "NVIDIA RTX 4060", "total_gb": 8.0}]})
    note_gpus(notes, "This computer", {"gpus": []})
    for name, target in (("portrait-style-v3", "gpu-01"), ("product-shots-sdxl", "gpu-01"),
                         ("watercolor-landscapes", "lora-trainer-02")):
        pretend_running(workspace / "runs" / name, target)
    now = time.time() - 1800
    queued = [("character-mia-v2", Needs(1, 6.4, ()), "alice@design-07"),
              ("sdxl-two-nodes", Needs(1, 14.2, ("gpu-01", "lora-trainer-02"), together=True), "alice@design-07"),
              ("flux-brand-style", Needs(1, 28.5, ("gpu-01", "lora-trainer-02", "gpu-small")), "root@vm"),
              ("sdxl-packaging", Needs(1, 14.2, ("gpu-01", "lora-trainer-02")), "ben@design-03"),
              ("logo-icons-v2", Needs(1, 5.1, ("gpu-small",)), "ben@design-03"),
              ("logo-icons-v1", Needs(1, 5.1, ("gpu-small",)), "ben@design-03")]
    for offset, (name, needs, desk) in reversed(list(enumerate(queued))):
        enqueue(write_config(workspace, name), workspace, needs, desk, now=now + 300 * offset)
        if name == "logo-icons-v1":  # ben's desk tried to start it, and its preflight said no
            problem = ("gpu-small cannot see the dataset folder: Z:\\lora\\datasets\\logos — add a path mapping "
                       "for it (Targets panel, gpu-small)")
            dispatch(workspace, [SshTarget(name="gpu-small", host="10.20.0.31", user="trainer")],
                     lambda entry, target: StartResult(False, problems=(problem,)), "ben@design-03")
    try_claim(workspace / "runs" / "logo-icons-v2", "ben@design-03", "start", "gpu-small")
    return workspace


def main() -> int:
    out = ROOT / "tests" / "artifacts" / "fleet-queue.png"
    from app_helpers import save_screen, temporary_scene
    with temporary_scene(build) as (app, window, workspace):
        from PySide6.QtCore import QTimer

        bench = window.workbench

        def no_start(*_args, **_kwargs):
            raise RuntimeError("nothing starts in a screenshot")
        bench.fleet.launch_fn = bench.fleet.launch_nodes_fn = no_start
        bench.fleet.ahead = None  # nothing is started: nothing is checked ahead either
        shots: list[str] = []

        def shoot() -> None:
            page = bench.fleet_page
            if not page.model.rows:
                QTimer.singleShot(200, shoot)
                return
            bench.fleet.timer.stop()
            flux = workspace / "runs" / "flux-brand-style"
            row = next(r for r in page.model.rows if r.entry.run_dir == flux)
            page.show_queued(flux, row.status.removeprefix("waits for "), row.entry.queued_at - 1)
            page.table.selectRow(page.model.row_of(str(flux)))
            QTimer.singleShot(800, grab)

        def grab() -> None:
            shots.append(str(save_screen(out, window)))
            # The Runs list shows the queue too, above the run folders: the same flux run selected there.
            bench.show_runs()
            bench.monitor._select_path(str(workspace / "runs" / "flux-brand-style"))
            QTimer.singleShot(800, grab_runs)

        def grab_runs() -> None:
            shots.append(str(save_screen(ROOT / "tests" / "artifacts" / "runs-queue.png", window)))
            # The run whose start failed: its reasons, Cancel… and Queue again.
            bench.monitor._select_path(str(workspace / "runs" / "logo-icons-v1"))
            QTimer.singleShot(800, grab_failed)

        def grab_failed() -> None:
            shots.append(str(save_screen(ROOT / "tests" / "artifacts" / "runs-queue-failed.png", window)))
            window.close()
            app.quit()

        QTimer.singleShot(300, lambda: (bench.show_fleet(), QTimer.singleShot(500, shoot)))
        app.exec()
        print("\n".join(shots) if shots else "no screenshot")
    return 0 if shots else 1


if __name__ == "__main__":
    sys.exit(main())
