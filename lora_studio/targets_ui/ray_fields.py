"""The Ray cluster's rows of the target dialog: the dashboard's address, what one run asks Ray for,
and an optional runtime environment. The dialog keeps the rows every target has (name, Python,
runs at once, path mapping); a Ray target's runs find the run folder on the share like any other's.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QLineEdit, QWidget

from ..targets.model import RayTarget
from ..targets.ray_client import DEFAULT_PORT

ADDRESS_TIP = (f"The Ray dashboard's address (its Jobs API), as `ray job submit` uses it: http://HEAD:{DEFAULT_PORT}. "
               "Runs go to Ray as jobs; Ray queues each until a node has the GPUs and CPUs below free.")
RUNTIME_ENV_TIP = ("Optional: a Ray runtime environment as JSON for every run, e.g. "
                   '{"env_vars": {"HF_HOME": "/data/hf"}}. The trainer must already be installed on the nodes '
                   "(the Python above); a pip list here is installed by Ray before each run.")


def _amount_box(parent: QWidget, value: float, maximum: float, tip: str, name: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setObjectName(name)
    box.setRange(0, maximum)
    box.setDecimals(1)  # Ray takes fractions (0.5 GPU shares one between two runs)
    box.setSingleStep(1)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class RayFields:
    """The Ray rows, added to ``form``; :meth:`values` gives the RayTarget fields they hold."""

    def __init__(self, parent: QWidget, form: QFormLayout, target: RayTarget | None) -> None:
        self.address = QLineEdit(target.address if target else "", parent)
        self.address.setObjectName("rayAddress")
        self.address.setPlaceholderText(f"http://ray-head:{DEFAULT_PORT}")
        self.address.setToolTip(ADDRESS_TIP)
        self.gpus = _amount_box(parent, target.num_gpus if target else 1.0, 64, "GPUs Ray gives each run", "rayGpus")
        self.cpus = _amount_box(parent, target.num_cpus if target else 1.0, 512,
                                "CPUs Ray gives each run (data loading runs on them)", "rayCpus")
        self.runtime_env = QLineEdit(target.runtime_env if target else "", parent)
        self.runtime_env.setObjectName("rayRuntimeEnv")
        self.runtime_env.setPlaceholderText('none, or JSON such as {"env_vars": {"HF_HOME": "/data/hf"}}')
        self.runtime_env.setToolTip(RUNTIME_ENV_TIP)
        form.addRow("Ray address:", self.address)
        form.addRow("GPUs per run:", self.gpus)
        form.addRow("CPUs per run:", self.cpus)
        form.addRow("Runtime environment:", self.runtime_env)

    def values(self) -> dict:
        """The RayTarget keyword arguments these rows hold."""
        return {"address": self.address.text().strip(), "num_gpus": self.gpus.value(), "num_cpus": self.cpus.value(),
                "runtime_env": self.runtime_env.text().strip()}
