"""The Runs page with a run over two VMs, for a person to look at: ``tests/artifacts/monitor-multinode.png``
(the nodes dialog of the Train page: ``tests/artifacts/nodes-dialog-x11.png``, and the Train page's
figures for the two nodes: ``tests/artifacts/train-multinode.png``, and node 2's output in the Log tab:
``tests/artifacts/monitor-multinode-log.png``).

Run it on a real X display (what a user's desktop has)::

    Xvfb :80 -screen 0 1600x1000x24 &
    DISPLAY=:80 QT_QPA_PLATFORM=xcb .venv/bin/python tests/app/multinode_screenshot.py

It builds a workspace in a temporary folder: two GPU VMs and an SSH host as targets, a run over
the two VMs (2 nodes × 2 GPUs, torchrun restarted its workers once at step 300) and a run on one
machine beside it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]


def build(root: Path) -> Path:
    """The scene's workspace under ``root`` (the app home beside it)."""
    import math

    from app_helpers import write_base_model_header
    from lora_studio.targets import Node, Placement
    from lora_studio.targets.model import SshTarget, TargetSettings, VCenter, VSphereTarget, save_settings
    from lora_studio.targets.runinfo import RunInfo, write_run_info
    from lora_studio.targets_ui.store import settings_file
    from tests.fleet.helpers import pretend_running
    from trainer.demo_workspace import create_demo_workspace

    workspace = root / "lora"
    create_demo_workspace(workspace, make_model=False)
    write_base_model_header(workspace / "models" / "tiny-sd" / "tiny-sd-v1.safetensors")
    save_settings(settings_file(), TargetSettings(
        vcenters=[VCenter(name="vc-lab", host="vc.lab.example", user="administrator@vsphere.local")],
        targets=[VSphereTarget(name="lora-trainer-01", vcenter="vc-lab", vm="lora-trainer-01", ssh_user="trainer",
                               network_interface="ens224"),
                 VSphereTarget(name="lora-trainer-02", vcenter="vc-lab", vm="lora-trainer-02", ssh_user="trainer",
                               network_interface="ens224"),
                 SshTarget(name="gpu-01", host="gpu-01.lab.example", user="trainer")]))
    pretend_running(workspace / "runs" / "portrait-style-v3", "gpu-01")
    run = workspace / "runs" / "sdxl-packaging-2x2"
    run.mkdir(parents=True)
    now = time.time()
    lines = []
    for step in range(1, 421):
        loss = 0.09 + 0.05 * math.exp(-step / 120) + 0.012 * math.sin(step * 1.7) * math.cos(step * 0.31)
        lines.append(json.dumps({"step": step, "epoch": 1 + step // 100, "loss": loss, "lr": 1e-4,
                                 "time": now - 900 + step * 2, "samples_per_s": 15.6}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "events.jsonl").write_text(json.dumps({"time": now - 300, "kind": "resume", "checkpoint": "step-00000300",
                                                  "step": 300, "epoch": 4}) + "\n")
    (run / "status.json").write_text(json.dumps({"state": "training", "step": 420, "total_steps": 1000, "epoch": 5,
                                                 "total_epochs": 10, "heartbeat": now, "eta_s": 1160, "pid": 7311,
                                                 "host": "lora-trainer-01", "started_at": now - 900}))
    placement = Placement((Node("lora-trainer-01", "10.20.0.21", 4101, 2, "train.log", "ens224", "lora-trainer-01"),
                           Node("lora-trainer-02", "10.20.0.22", 5202, 2, "train.node2.log", "ens224",
                                "lora-trainer-02")), "10.20.0.21:41234", "sdxl-packaging-2x2-5f1c", 3)
    write_run_info(run, RunInfo("vsphere", "lora-trainer-01", "10.20.0.21", 4101, ["python3"], now - 900, "0", "ssh",
                                "/data/lora/runs/sdxl-packaging-2x2", "/data/lora/runs/sdxl-packaging-2x2/config.yaml",
                                vm="lora-trainer-01", vcenter="vc-lab",
                                extra={"kind": "train", "placement": placement.to_json()}))
    # Each node's output: torchrun's and its two workers'.
    for name, node, first in (("train.log", "lora-trainer-01", 0), ("train.node2.log", "lora-trainer-02", 2)):
        text = [f"[{node}] torchrun: --nnodes 2 --nproc-per-node 2 --rdzv-endpoint 10.20.0.21:41234",
                f"[{node}] rank {first} and {first + 1} of 4 joined the rendezvous (round 1)"]
        if first:
            text += [f"[{node}] rank 3 exited with signal 9 (SIGKILL) at step 301", f"[{node}] restarting workers (1 of 3)",
                     f"[{node}] rank {first} and {first + 1} of 4 joined the rendezvous (round 2)"]
        text += [f"step {step}: loss {0.09 + 0.05 * math.exp(-step / 120):.4f}" for step in range(300, 421, 20)]
        (run / name).write_text("\n".join(text) + "\n", encoding="utf-8")
    return workspace


def main() -> int:
    out = ROOT / "tests" / "artifacts" / "monitor-multinode.png"
    dialog_out = ROOT / "tests" / "artifacts" / "nodes-dialog-x11.png"
    train_out = ROOT / "tests" / "artifacts" / "train-multinode.png"
    log_out = ROOT / "tests" / "artifacts" / "monitor-multinode-log.png"
    from app_helpers import save_screen, temporary_scene
    with temporary_scene(build) as (app, window, workspace):
        from PySide6.QtCore import Qt, QTimer

        from lora_studio.widgets.node_choice import SEVERAL_TARGETS
        bench = window.workbench
        shots: list[str] = []
        run = workspace / "runs" / "sdxl-packaging-2x2"

        def grab(path: Path, widget) -> None:
            shots.append(str(save_screen(path, widget)))

        def select() -> None:
            monitor = bench.monitor
            if not any(r.path == run for r in monitor.model.runs):
                QTimer.singleShot(200, select)
                return
            monitor.table.clearSelection()
            monitor._select_path(str(run))
            QTimer.singleShot(1500, shoot_monitor)

        def shoot_monitor() -> None:
            grab(out, window)
            monitor = bench.monitor  # node 2's output in the Log tab
            monitor.tabs.setCurrentWidget(monitor.log_view)
            monitor.log_view.node.setCurrentIndex(1)
            QTimer.singleShot(600, shoot_log)

        def shoot_log() -> None:
            grab(log_out, window)
            bench.open_config(workspace / "configs" / "demo.yaml")
            box = bench.training.target_box
            index = box.findText(SEVERAL_TARGETS)
            box.setCurrentIndex(index)
            box.activated.emit(index)
            QTimer.singleShot(800, shoot_dialog)

        def shoot_dialog() -> None:
            dialog = bench.node_choice.dialog
            for row in range(2):
                dialog.list.item(row).setCheckState(Qt.CheckState.Checked)
            QTimer.singleShot(400, lambda: (grab(dialog_out, dialog), dialog.accept(), QTimer.singleShot(300, figures)))

        def figures() -> None:  # the Train page counts the run's processes over both nodes
            page = bench.training
            if page.analysis is None or page.analysis.processes.count < 2:
                QTimer.singleShot(200, figures)
                return
            QTimer.singleShot(500, lambda: (grab(train_out, window), window.close(), app.quit()))

        QTimer.singleShot(300, lambda: (bench.show_runs(), QTimer.singleShot(500, select)))
        app.exec()
        print("\n".join(shots) if shots else "no screenshot")
    return 0 if len(shots) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
