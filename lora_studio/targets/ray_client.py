"""Ray's Jobs REST API over plain HTTP: submit, status, logs and stop of a job, and the nodes' resources.

The app speaks the documented REST API of the Ray dashboard (``/api/jobs/``, the same one
``ray job submit`` and ``ray.job_submission.JobSubmissionClient`` use) with the standard
library, so the desktop bundle carries no ``ray`` package: that is hundreds of megabytes
and about 900 modules, for five HTTP calls. Every call has a timeout; an address with
nothing behind it is a :class:`RayUnreachable` that names the address and says what to do.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import ConnectionFailed, TargetConfigError, TargetError

DEFAULT_PORT = 8265         # the dashboard's (and so the Jobs API's) port when the address names none
QUICK_TIMEOUT_S = 3.0       # "is it there?": the preflight must answer fast when the head is down
CALL_TIMEOUT_S = 30.0       # a submit waits for Ray's job agent on the head node
# Job states as Ray names them (ray.job_submission.JobStatus).
PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED = "PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"
RAY_ACTIVE = (PENDING, RUNNING)
UNREACHABLE_HINT = ("check that the Ray head runs there (`ray status` on the head node) and that this computer "
                    "reaches its dashboard port; the address is the dashboard's, e.g. http://ray-head:8265")


class RayUnreachable(ConnectionFailed):
    """Nothing answers at the Ray address (refused, timed out, unknown host, not a Ray dashboard)."""


class RayRequestFailed(TargetError):
    """The Ray cluster answered but refused the request (a bad submission, an unknown job)."""

    def __init__(self, message: str, hint: str = "", status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


def normalize_address(address: str) -> str:
    """``http://host:port`` of a Ray dashboard from what a user typed (``head``, ``head:8265``, a URL).

    ``ray://`` (the Ray Client port, 10001) is refused with the right port to use instead.
    """
    text = address.strip().rstrip("/")
    if not text:
        raise TargetConfigError("the Ray target has no address", "enter the Ray dashboard's address, e.g. http://ray-head:8265")
    if text.startswith("ray://"):
        raise TargetConfigError(f"{text} is a Ray Client address; runs go through the Jobs API of the dashboard",
                                f"use http://{urllib.parse.urlsplit(text).hostname or 'ray-head'}:{DEFAULT_PORT}")
    if "://" not in text:
        text = f"http://{text}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetConfigError(f"{address!r} is not a Ray dashboard address", "use http://HOST:8265")
    try:
        port = parts.port or (DEFAULT_PORT if parts.scheme == "http" else 443)
    except ValueError:
        raise TargetConfigError(f"{address!r} has no valid port", "use http://HOST:8265") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class RayJob:
    """A job as Ray reports it (the fields of ``GET /api/jobs/<id>`` the app uses)."""

    submission_id: str
    status: str                  # PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED
    message: str = ""
    error_type: str = ""         # e.g. JOB_SUPERVISOR_ACTOR_START_TIMEOUT, JOB_ENTRYPOINT_COMMAND_ERROR
    exit_code: int | None = None  # the entrypoint's, once it ended
    node_id: str = ""            # the node its entrypoint runs on

    @property
    def active(self) -> bool:
        """Whether Ray still holds the job (queued for resources, or running)."""
        return self.status in RAY_ACTIVE

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RayJob":
        """From the API's JSON object."""
        code = data.get("driver_exit_code")
        return cls(str(data.get("submission_id") or data.get("job_id") or ""), str(data.get("status") or ""),
                   str(data.get("message") or ""), str(data.get("error_type") or ""),
                   int(code) if isinstance(code, int) else None, str(data.get("driver_node_id") or ""))


@dataclass(frozen=True)
class RayNode:
    """One live node of the cluster and the resources it has in total (``/api/v0/nodes``)."""

    name: str
    gpus: float
    cpus: float
    is_head: bool = False


def _error_line(body: str) -> str:
    """The last line of a Ray error body that says something (Ray answers errors with a traceback)."""
    lines = [line.strip() for line in body.strip().splitlines() if line.strip() and line.strip() != "."]
    last = lines[-1] if lines else ""
    for prefix in ("ValueError: ", "RuntimeError: ", "TypeError: "):
        if prefix in last:
            last = last.split(prefix, 1)[1]
    return last.rstrip(".")[:500]


class RayJobsClient:
    """The Jobs API of one Ray cluster. Blocking, no shared state beyond the address: call it from a worker."""

    def __init__(self, address: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.address = normalize_address(address)
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              timeout: float | None = None) -> Any:
        url = self.address + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:  # noqa: S310 - http(s) only
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = _error_line(exc.read().decode("utf-8", "replace")) or exc.reason
            raise RayRequestFailed(f"the Ray cluster at {self.address} refused {method} {path}: {detail}",
                                   "see the Ray dashboard's job page for details", exc.code) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RayUnreachable(f"the Ray cluster at {self.address} does not answer ({reason})", UNREACHABLE_HINT) from None
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            raise RayUnreachable(f"{self.address} answered, but not as a Ray dashboard (no JSON at {path})",
                                 UNREACHABLE_HINT) from None

    def version(self, timeout: float = QUICK_TIMEOUT_S) -> str:
        """The cluster's Ray version (a quick "is it there?")."""
        data = self._call("GET", "/api/version", timeout=timeout)
        if not isinstance(data, dict) or "ray_version" not in data:
            raise RayUnreachable(f"{self.address} answered, but not as a Ray dashboard", UNREACHABLE_HINT)
        return str(data["ray_version"])

    def submit(self, entrypoint: str, submission_id: str, *, num_gpus: float = 0, num_cpus: float = 0,
               runtime_env: dict[str, Any] | None = None, metadata: dict[str, str] | None = None) -> str:
        """Submit ``entrypoint`` (a shell command) as job ``submission_id``; returns the job's id.

        Ray queues the job until a node has ``num_gpus`` GPUs and ``num_cpus`` CPUs free, and runs
        the entrypoint there (with ``CUDA_VISIBLE_DEVICES`` set to its GPUs).
        """
        body: dict[str, Any] = {"entrypoint": entrypoint, "submission_id": submission_id}
        if num_gpus:
            body["entrypoint_num_gpus"] = num_gpus
        if num_cpus:
            body["entrypoint_num_cpus"] = num_cpus
        if runtime_env:
            body["runtime_env"] = runtime_env
        if metadata:
            body["metadata"] = metadata
        data = self._call("POST", "/api/jobs/", body)
        return str((data or {}).get("submission_id") or (data or {}).get("job_id") or submission_id)

    def job(self, submission_id: str, timeout: float | None = None) -> RayJob | None:
        """The job's status, or None when the cluster does not know it (deleted, or another cluster)."""
        try:
            data = self._call("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}", timeout=timeout)
        except RayRequestFailed as exc:
            if exc.status == 404:
                return None
            raise
        return RayJob.from_json(data) if isinstance(data, dict) else None

    def logs(self, submission_id: str) -> str:
        """Everything the job's entrypoint printed (Ray keeps it on the node that ran it)."""
        data = self._call("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}/logs")
        return str((data or {}).get("logs") or "")

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job: SIGTERM to its entrypoint, SIGKILL a few seconds later.

        Returns whether Ray had a job to stop. A job still waiting for resources is stopped by
        Ray only once it would start (its API cannot drop a waiting job).
        """
        data = self._call("POST", f"/api/jobs/{urllib.parse.quote(submission_id)}/stop")
        return bool((data or {}).get("stopped"))

    def nodes(self, timeout: float = QUICK_TIMEOUT_S) -> list[RayNode]:
        """The live nodes with their total GPUs and CPUs (Ray's state API, as ``ray list nodes``)."""
        data = self._call("GET", "/api/v0/nodes?limit=1000", timeout=timeout)
        rows = (((data or {}).get("data") or {}).get("result") or {}).get("result") or []
        nodes = []
        for row in rows:
            if row.get("state", "ALIVE") != "ALIVE":
                continue
            total = row.get("resources_total") or {}
            nodes.append(RayNode(str(row.get("node_name") or row.get("node_ip") or row.get("node_id") or "?"),
                                 float(total.get("GPU") or 0), float(total.get("CPU") or 0), bool(row.get("is_head_node"))))
        return nodes
