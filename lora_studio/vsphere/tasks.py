"""Reading properties and waiting for vCenter tasks, with progress and cancel.

Properties are read through the property collector, never through pyvmomi's accessors
(``vm.snapshot``, ``task.info``): an accessor fetches the whole property, and a vCenter
answers some of those with data pyvmomi cannot parse (a snapshot task's ``info.entity`` is
a snapshot, which pyvmomi insists must be a managed entity) or, on the simulator, not at all
when the property is unset. The collector reads only the paths asked for and leaves unset
ones out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from pyVmomi import vim, vmodl

from .errors import Cancelled, TaskFailed, VSphereError, fault_text

if TYPE_CHECKING:
    from ..targets.vsphere import VCenterSession

#: ``progress(step, percent)``: a step of an operation ("cloning lora-01") and the running
#: task's percent done (None when vCenter gives none).
Progress = Callable[[str, "int | None"], None]
#: ``cancelled()`` is polled while a task runs; True cancels it (``CancelTask``).
CancelCheck = Callable[[], bool]

_DONE = (vim.TaskInfo.State.success, vim.TaskInfo.State.error)
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 1.0


def properties(session: VCenterSession, obj: Any, paths: list[str]) -> dict[str, Any]:
    """``paths`` of one managed object, in one call; unset properties are absent from the dict."""
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=obj, skip=False)],
                         propSet=[pc.PropertySpec(type=type(obj), pathSet=paths)])
    result = session.content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
    if not result or not result.objects:
        return {}
    return {p.name: p.val for p in result.objects[0].propSet}


def _nothing(step: str, percent: int | None) -> None:
    pass


def _never() -> bool:
    return False


def wait_task(session: VCenterSession, task: vim.Task, what: str, *, progress: Progress | None = None,
              cancelled: CancelCheck | None = None, timeout: float = 3600.0) -> Any:
    """Wait for ``task``; returns its result. ``what`` names it in progress reports and errors.

    When ``cancelled()`` turns true the task is cancelled; a task that finishes before the
    cancel reaches it returns normally (the caller checks ``cancelled()`` again and undoes
    it). Raises :class:`Cancelled` when vCenter cancelled it and :class:`VSphereError` with
    vCenter's message when it failed.
    """
    progress, cancelled = progress or _nothing, cancelled or _never
    deadline = time.monotonic() + timeout
    delay, asked_cancel, last = _POLL_FIRST_S, False, None
    while True:
        info = properties(session, task, ["info.state", "info.progress", "info.error", "info.result"])
        state = info.get("info.state")
        if state in _DONE:
            break
        percent = info.get("info.progress")
        if percent != last:
            progress(what, percent)
            last = percent
        if not asked_cancel and cancelled():
            asked_cancel = True
            _cancel(task)
        if time.monotonic() > deadline:
            raise VSphereError(f"{what} did not finish within {timeout:.0f} s",
                               "look at the task in vSphere Client; it may still be running")
        time.sleep(delay)  # vCenter tasks take seconds to minutes: back off to one poll a second
        delay = min(delay * 1.5, _POLL_MAX_S)
    if state == vim.TaskInfo.State.error:
        error = info.get("info.error")
        if isinstance(error, vmodl.fault.RequestCanceled):
            raise Cancelled(f"{what} was cancelled", "nothing was changed by it")
        raise TaskFailed(f"{what} failed: {fault_text(error) if error is not None else 'unknown error'}",
                         "look at the task's events in vSphere Client", error)
    progress(what, 100)
    return info.get("info.result")


def _cancel(task: vim.Task) -> None:
    """Ask vCenter to cancel ``task``; a task past cancelling (or finished) just goes on."""
    try:
        task.CancelTask()
    except vmodl.MethodFault:  # InvalidState (finished, or not cancellable at this stage), NotSupported
        pass


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with a vCenter fault turned into a :class:`VSphereError` naming ``what``."""
    try:
        return fn(*args, **kwargs)
    except vmodl.MethodFault as exc:
        raise VSphereError(f"{what} failed: {fault_text(exc)}", "look at the task's events in vSphere Client") from None
