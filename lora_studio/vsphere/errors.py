"""Errors of the vSphere operations: each says what went wrong and what to do about it.

They are :class:`~lora_studio.targets.errors.TargetError` subclasses, so the app shows them
like every other target error (message and hint) and the CLI prints them on one line.
"""

from __future__ import annotations

from pyVmomi import vmodl

from ..targets.errors import TargetError


class VSphereError(TargetError):
    """A vCenter operation failed (a fault of a task or call, a timeout)."""


class TaskFailed(VSphereError):
    """A vCenter task ended in error; ``fault`` is vCenter's fault object (to tell kinds apart)."""

    def __init__(self, message: str, hint: str, fault: object = None) -> None:
        super().__init__(message, hint)
        self.fault = fault


class BadInput(VSphereError):
    """A value the user gave is wrong: an unknown VM, host or policy, a number out of range.

    ``option`` names the field as the CLI spells it (``--host``), so the CLI and a dialog can
    both point at what to change.
    """

    def __init__(self, option: str, message: str, hint: str) -> None:
        super().__init__(f"{option}: {message}", hint)
        self.option = option


class Cancelled(VSphereError):
    """The user cancelled a vCenter task; what it had made is removed again."""


def fault_text(exc: BaseException) -> str:
    """vCenter's own words for a fault (``msg``, else its localized message, else its type)."""
    if isinstance(exc, vmodl.MethodFault):
        for attr in ("msg", "localizedMessage"):
            text = getattr(exc, attr, None)
            if text:
                return str(text)
        messages = [m.message for m in getattr(exc, "faultMessage", None) or () if getattr(m, "message", None)]
        if messages:
            return "; ".join(messages)
        return type(exc).__name__.rsplit(".", 1)[-1]
    return str(exc) or type(exc).__name__


def choices(names: list[str] | tuple[str, ...] | set[str], limit: int = 12) -> str:
    """``a, b, c`` for a hint, with "and N more" past ``limit`` and "none" for nothing."""
    ordered = sorted(set(names), key=str.lower)
    if not ordered:
        return "none"
    shown = ", ".join(ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")
