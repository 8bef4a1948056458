"""The saved targets and vCenters (``app_home()/targets.json``), edited by the Targets panel.

One object owns the settings so both tabs see the same list, and every change is written
atomically at once and announced with :attr:`TargetStore.changed` (the Train tab's "Run on:"
list follows it). No secret ever passes through here: passwords go to the keyring.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..paths import app_home
from ..targets import (Target, TargetConfigError, TargetContext, TargetSettings, VCenter, load_settings, pin_vcenter,
                       save_settings)


def settings_file() -> Path:
    """Where the targets are saved."""
    return app_home() / "targets.json"


def gpu_notes_file() -> Path:
    """Where this desk keeps the GPUs its targets reported at their last preflight or check (see fleet.fit)."""
    return app_home() / "target-gpus.json"


def known_hosts_file() -> Path:
    """The app's own known_hosts (pinned SSH host keys)."""
    return app_home() / "known_hosts"


def app_context(settings: TargetSettings | None = None) -> TargetContext:
    """What the targets backend needs from the app: the targets (``settings``, else those saved by
    the Targets panel, read now) and the app's known_hosts; passwords come from the OS keyring.

    The one place a TargetContext of the app is made: training, auto-captioning, the Runs page
    and the Targets panel all reach their targets through it. Raises TargetConfigError when
    the saved file cannot be read.
    """
    return TargetContext(load_settings(settings_file()) if settings is None else settings, known_hosts_file())


class TargetStore(QObject):
    """The targets settings in memory, saved on every change."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = TargetSettings()
        self.load_error = ""

    def load(self) -> None:
        """Read the settings file; an unreadable one leaves the defaults and says why in ``load_error``."""
        try:
            self.settings = load_settings(settings_file())
            self.load_error = ""
        except TargetConfigError as exc:
            self.settings = TargetSettings()
            self.load_error = f"{exc.message} ({exc.hint})"
        self.changed.emit()

    def context(self) -> TargetContext:
        """What a worker needs: a snapshot of the settings in memory, in the app's context."""
        return app_context(replace(self.settings, vcenters=list(self.settings.vcenters),
                                   targets=list(self.settings.targets)))

    def _save(self, settings: TargetSettings) -> None:
        save_settings(settings_file(), settings)
        self.settings = settings
        self.load_error = ""
        self.changed.emit()

    # -- targets ---------------------------------------------------------------------------
    def put_target(self, target: Target, old_name: str | None = None) -> None:
        """Add ``target`` or replace the one called ``old_name``; names stay unique."""
        if any(t.name == target.name and t.name != old_name for t in self.settings.targets):
            raise TargetConfigError(f"a target is already called {target.name!r}", "choose another name")
        targets = list(self.settings.targets)
        index = next((i for i, t in enumerate(targets) if t.name == old_name), None)
        if index is None:
            targets.append(target)
        else:
            targets[index] = target
        self._save(replace(self.settings, targets=targets))

    def remove_target(self, name: str) -> None:
        """Forget the target called ``name`` (its runs stay where they are)."""
        self._save(replace(self.settings, targets=[t for t in self.settings.targets if t.name != name]))

    # -- vCenters ----------------------------------------------------------------------------
    def put_vcenter(self, vcenter: VCenter, old_name: str | None = None) -> None:
        """Add ``vcenter`` or replace the one called ``old_name``."""
        if any(v.name == vcenter.name and v.name != old_name for v in self.settings.vcenters):
            raise TargetConfigError(f"a vCenter is already called {vcenter.name!r}", "choose another name")
        vcenters = [v for v in self.settings.vcenters if v.name != old_name]
        self._save(replace(self.settings, vcenters=[*vcenters, vcenter]))

    def remove_vcenter(self, name: str) -> None:
        """Forget a vCenter (targets on its VMs stay, and say so when used)."""
        self._save(replace(self.settings, vcenters=[v for v in self.settings.vcenters if v.name != name]))

    def pin(self, name: str, thumbprint: str) -> None:
        """Trust vCenter ``name``'s certificate: the user compared and accepted ``thumbprint``."""
        self._save(pin_vcenter(self.settings, name, thumbprint))
