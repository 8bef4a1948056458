"""Fixtures for the vSphere operations tests: govmomi's vCenter simulator over TLS (the targets
tests' fixture; this folder gets a simulator of its own, as these tests add VMs, snapshots and
policies), a pinned session, a template, and the CLI run as a subprocess.

The simulator (tools/vcsim) serves SPBM at /pbm, gives each host two A100s for passthrough and
vGPU profiles, and starts VMware Tools in a VM shortly after it is powered on.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyVmomi import vim

from lora_studio.targets.model import VCenter
from lora_studio.targets.vsphere import VCenterSession, connect_vcenter
from lora_studio.vsphere.tasks import properties, wait_task
from tests.targets import conftest as targets_fixtures

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "trainer-template"
PASSWORD_ENV = "LORA_STUDIO_VCENTER_PASSWORD"

# The targets tests' simulator fixtures, registered here too (a separate instance for this folder).
vcsim_binary = targets_fixtures.vcsim_binary
vcsim = targets_fixtures.vcsim


def server_thumbprint(vcsim) -> str:
    """The SHA-256 thumbprint of the simulator's certificate, as an admin reads it off vCenter."""
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((vcsim.host, vcsim.port)))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


@pytest.fixture(scope="session")
def pinned(vcsim) -> VCenter:
    """The simulator as a vCenter with its certificate pinned."""
    return VCenter("lab", vcsim.host, vcsim.user, vcsim.port, thumbprint=server_thumbprint(vcsim))


@pytest.fixture(scope="session")
def session(vcsim, pinned) -> VCenterSession:
    """A logged-in session to the simulator, through the app's own connect."""
    with connect_vcenter(pinned, vcsim.password) as live:
        yield live


def by_name(session: VCenterSession, kind: type, name: str):
    """The inventory object of ``kind`` called ``name`` (test setup and read-back)."""
    return next(obj for obj, p in session.collect(kind, ["name"]) if p.get("name") == name)


@pytest.fixture(scope="session")
def template(session) -> str:
    """A template in the cluster (on DC0_C0_H0), cloned from one of the simulator's VMs."""
    source = by_name(session, vim.VirtualMachine, "DC0_C0_RP0_VM0")
    p = properties(session, source, ["parent", "resourcePool"])
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=p["resourcePool"]), template=True, powerOn=False)
    wait_task(session, source.CloneVM_Task(folder=p["parent"], name=TEMPLATE, spec=spec), "making the template")
    return TEMPLATE


@dataclass
class Cli:
    """``python -m lora_studio.vsphere`` against the simulator, as a subprocess."""

    vcsim: object
    thumbprint: str

    def __call__(self, *args: str, connect: bool = True, password: str | None = None, env: dict | None = None,
                 stdin: str | None = None) -> subprocess.CompletedProcess:
        command, *rest = args
        flags = ["--vcenter", f"{self.vcsim.host}:{self.vcsim.port}", "--user", self.vcsim.user,
                 "--thumbprint", self.thumbprint] if connect else []
        environ = {**os.environ, PASSWORD_ENV: self.vcsim.password if password is None else password, **(env or {})}
        if environ[PASSWORD_ENV] == "":
            del environ[PASSWORD_ENV]
        return subprocess.run([sys.executable, "-m", "lora_studio.vsphere", command, *flags, *rest], cwd=ROOT,
                              env=environ, input=stdin, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="session")
def cli(vcsim, pinned) -> Cli:
    """Run the CLI with the connection flags (pinned thumbprint, password in the environment)."""
    return Cli(vcsim, pinned.thumbprint)


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The CLI's stderr after a refusal: exactly one line, no traceback; returns it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
