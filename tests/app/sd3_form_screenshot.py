"""The Train page with an SD3.5 checkpoint chosen, for a person to look at: ``tests/artifacts/form-sd3.png``.

Run it on a real X display (what a user's desktop has)::

    Xvfb :85 -screen 0 1600x1000x24 &
    DISPLAY=:85 QT_QPA_PLATFORM=xcb .venv/bin/python tests/app/sd3_form_screenshot.py

It builds a workspace in a temporary folder with the tiny SD3.5 Medium kept as ComfyUI users keep it
(the checkpoint in models/checkpoints, its three text encoders in models/clip, the T5 tokenizer) and
a config that names only the checkpoint: the page shows the family's badge, finds the text encoders
and fills them in, shows SD3's options and its memory estimate.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

CONFIG = """\
# SD3.5 Medium style LoRA from ComfyUI's files: the text encoders are found beside the checkpoint.
train_data_dir: ../datasets/shapes
metadata_path: ../datasets/shapes/metadata.csv
base_model: ../models/checkpoints/sd3.5-tiny-medium.safetensors
output_dir: ../runs/sd3-style
lora_rank: 16
batch_size: 1
max_train_steps: 1500
mixed_precision: bf16
gradient_checkpointing: true
"""


def build(root: Path) -> Path:
    """The scene's workspace under ``root``."""
    from app_helpers import place_sd3_files, write_base_model_header
    from trainer.demo_workspace import create_demo_workspace
    from trainer.models.tiny import make_tiny_model

    workspace = root / "lora"
    create_demo_workspace(workspace, make_model=False)
    write_base_model_header(workspace / "models" / "tiny-sd" / "tiny-sd-v1.safetensors")
    tiny = make_tiny_model(root / "tiny-sd3", family="sd3")
    place_sd3_files(workspace / "models", tiny.diffusers_dir.parent / "split")
    (workspace / "configs" / "sd3.yaml").write_text(CONFIG, encoding="utf-8")
    return workspace


def main() -> int:
    from PySide6.QtCore import QTimer

    from app_helpers import save_screen, temporary_scene

    out = ROOT / "tests" / "artifacts" / "form-sd3.png"
    shots: list[str] = []
    with temporary_scene(build) as (app, window, workspace):
        bench = window.workbench

        def wait_for_family() -> None:
            page = bench.training
            analysis = page.analysis
            if analysis is None or analysis.family is None or not page.raw.get("t5_tokenizer_path"):
                QTimer.singleShot(300, wait_for_family)
                return
            page.form.focus_option("clip_g_path")
            QTimer.singleShot(1000, grab)

        def grab() -> None:
            shots.append(str(save_screen(out, window)))
            # The filled-in text encoders made the (temporary) config "modified": saved, closing asks nothing.
            bench.training.save()
            window.close()
            app.quit()

        QTimer.singleShot(300, lambda: (bench.open_config(workspace / "configs" / "sd3.yaml"),
                                        QTimer.singleShot(500, wait_for_family)))
        app.exec()
    print(shots[0] if shots else "no screenshot")
    return 0 if shots else 1


if __name__ == "__main__":
    sys.exit(main())
