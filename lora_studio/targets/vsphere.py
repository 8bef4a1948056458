"""vCenter access (pyvmomi): TLS with thumbprint pinning, the VM inventory, power-on.

TLS is always verified. A vCenter with a self-signed certificate is trusted only by the
user pinning its SHA-256 thumbprint (shown by :class:`UntrustedCertificate` on first
contact); a different certificate later raises :class:`CertificateChanged`. Blocking
calls: run them in a worker thread.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from dataclasses import dataclass, field

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from .errors import CertificateChanged, ConnectionFailed, TargetError, UntrustedCertificate
from .model import VCenter

TIMEOUT_S = 20.0


@dataclass(frozen=True)
class CertificateInfo:
    """A server's TLS certificate as the user is asked to trust it."""

    thumbprint: str          # SHA-256, upper-case hex pairs joined by ":" (as vCenter displays it)
    subject: str
    issuer: str
    not_after: str
    system_trusted: bool     # verified by the system's CA store and host name
    reason: str              # why not, when not
    der: bytes = field(default=b"", repr=False)


def normalize_thumbprint(value: str) -> str:
    """``AA:BB:..`` / ``aabb..`` / with spaces -> ``AA:BB:..`` (SHA-256 only)."""
    hexdigits = "".join(ch for ch in value if ch not in ": ").lower()
    if len(hexdigits) != 64 or any(ch not in "0123456789abcdef" for ch in hexdigits):
        raise TargetError(f"{value!r} is not a SHA-256 thumbprint", "paste the 64 hex digits (32 pairs) of the SHA-256 thumbprint")
    return ":".join(hexdigits[i:i + 2] for i in range(0, 64, 2)).upper()


def _describe(cert: dict, key: str) -> str:
    return ", ".join("=".join(pair) for rdn in cert.get(key, ()) for pair in rdn)


def pinned_context(der: bytes) -> ssl.SSLContext:
    """A TLS context that trusts exactly one certificate (the pinned one), whatever signed it.

    Verification stays on: every connection pyvmomi opens is checked against that certificate.
    The host name is not checked because the pin is the identity (vCenters are often reached by
    an IP or alias their self-signed certificate does not name). PARTIAL_CHAIN lets a leaf
    signed by vCenter's own CA (VMCA) be the trust anchor by itself.
    """
    context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    context.check_hostname = False
    context.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    return context


def fetch_certificate(host: str, port: int = 443, timeout: float = TIMEOUT_S) -> CertificateInfo:
    """The certificate ``host:port`` presents, and whether the system trusts it."""
    loose = ssl.create_default_context()
    loose.check_hostname, loose.verify_mode = False, ssl.CERT_NONE  # only to read the certificate
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                loose.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise ConnectionFailed(f"cannot reach {host}:{port}: {exc}", "check the vCenter address and the network") from None
    thumbprint = normalize_thumbprint(hashlib.sha256(der).hexdigest())
    strict = ssl.create_default_context()
    subject = issuer = not_after = ""
    trusted, reason = True, ""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                strict.wrap_socket(sock, server_hostname=host) as tls:
            cert = tls.getpeercert()
            subject, issuer, not_after = _describe(cert, "subject"), _describe(cert, "issuer"), cert.get("notAfter", "")
    except ssl.SSLCertVerificationError as exc:
        trusted, reason = False, exc.verify_message or str(exc)
    except OSError as exc:
        trusted, reason = False, str(exc)
    if not subject:
        subject, issuer, not_after = _decode_der(der)
    return CertificateInfo(thumbprint, subject, issuer, not_after, trusted, reason, der)


def _decode_der(der: bytes) -> tuple[str, str, str]:
    """Subject, issuer and expiry of a certificate the system does not trust (via cryptography)."""
    try:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), str(cert.not_valid_after_utc)
    except Exception:  # informational only; the thumbprint is what is pinned
        return "?", "?", "?"


@dataclass(frozen=True)
class VmRow:
    """One VM of the inventory, as the Targets panel lists it."""

    name: str
    power_state: str          # poweredOn | poweredOff | suspended
    host: str
    cpus: int
    memory_mb: int
    gpus: tuple[str, ...]
    guest_os: str
    ip: str
    tools: str                # guestToolsRunning | guestToolsNotRunning | ...
    tools_status: str         # toolsOk | toolsOld | toolsNotInstalled | toolsNotRunning


def describe_gpus(devices: list) -> tuple[str, ...]:
    """GPUs among a VM's devices: PCI passthrough (fixed or dynamic DirectPath) and vGPU profiles."""
    gpus = []
    for device in devices or ():
        if not isinstance(device, vim.vm.device.VirtualPCIPassthrough):
            continue
        backing = device.backing
        if isinstance(backing, vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo):
            gpus.append(f"vGPU {backing.vgpu}")
        elif isinstance(backing, vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo):
            gpus.append(f"passthrough {backing.deviceName or 'PCI device'} ({backing.id})")
        elif isinstance(backing, vim.vm.device.VirtualPCIPassthrough.DynamicBackingInfo):
            label = getattr(backing, "customLabel", None) or getattr(backing, "deviceName", None) or "device"
            gpus.append(f"dynamic passthrough {label}")
        else:
            gpus.append(device.deviceInfo.summary if device.deviceInfo else "PCI passthrough")
    return tuple(gpus)


_VM_PROPS = ["name", "runtime.powerState", "runtime.host", "config.hardware.numCPU", "config.hardware.memoryMB",
             "config.hardware.device", "config.guestFullName", "guest.guestFullName", "guest.ipAddress",
             "guest.toolsRunningStatus", "guest.toolsStatus"]


class VCenterSession:
    """A logged-in vCenter connection. Close it with :meth:`close` (or use ``with``)."""

    def __init__(self, si: vim.ServiceInstance, vcenter: VCenter) -> None:
        self.si, self.vcenter = si, vcenter
        self.content = si.RetrieveContent()

    def close(self) -> None:
        """Log out."""
        try:
            Disconnect(self.si)
        except Exception:  # logging out of a dead session must not mask the real error
            pass

    def __enter__(self) -> "VCenterSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def collect(self, kind: type, props: list[str]) -> list[tuple[object, dict]]:
        """All objects of ``kind`` with ``props``, in one round trip (a container view + property collector).

        Unset properties are left out of each dict (read with ``.get``)."""
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [kind], True)
        try:
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view, skip=True, selectSet=[vmodl.query.PropertyCollector.TraversalSpec(
                        name="view", path="view", skip=False, type=vim.view.ContainerView)])],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=props)])
            out = []
            result = self.content.propertyCollector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
            while result:
                for obj in result.objects:
                    out.append((obj.obj, {p.name: p.val for p in obj.propSet}))
                token = result.token
                result = self.content.propertyCollector.ContinueRetrievePropertiesEx(token) if token else None
            return out
        finally:
            view.Destroy()

    def inventory(self) -> list[VmRow]:
        """Every VM with power state, host, CPUs, memory, GPUs, guest OS, IP and tools state."""
        hosts = {h._moId: p.get("name", "") for h, p in self.collect(vim.HostSystem, ["name"])}
        rows = []
        for _, p in self.collect(vim.VirtualMachine, _VM_PROPS):
            host = p.get("runtime.host")
            rows.append(VmRow(
                name=p.get("name", ""), power_state=str(p.get("runtime.powerState", "")),
                host=hosts.get(host._moId, "") if host is not None else "",
                cpus=int(p.get("config.hardware.numCPU") or 0), memory_mb=int(p.get("config.hardware.memoryMB") or 0),
                gpus=describe_gpus(p.get("config.hardware.device") or []),
                guest_os=p.get("guest.guestFullName") or p.get("config.guestFullName") or "",
                ip=p.get("guest.ipAddress") or "", tools=str(p.get("guest.toolsRunningStatus") or ""),
                tools_status=str(p.get("guest.toolsStatus") or "")))
        return sorted(rows, key=lambda r: r.name.lower())

    def find_vm(self, name: str) -> vim.VirtualMachine:
        """The VM called ``name``; a clear error when there is none."""
        for vm, props in self.collect(vim.VirtualMachine, ["name"]):
            if props.get("name") == name:
                return vm
        raise TargetError(f"vCenter {self.vcenter.name} has no VM called {name!r}",
                          "refresh the inventory; the VM may have been renamed or removed")

    def power_on(self, name: str, timeout: float = 300.0) -> str:
        """Power the VM on (no-op when on) and wait for the task; returns the new power state."""
        vm = self.find_vm(name)
        if vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn:
            return str(vm.runtime.powerState)
        self.wait(vm.PowerOnVM_Task(), timeout, f"powering on {name}")
        return str(vm.runtime.powerState)

    def guest_ip(self, name: str, timeout: float = 0.0) -> str:
        """The VM's guest IP (VMware Tools must be running); waits up to ``timeout`` seconds for one."""
        vm = self.find_vm(name)
        deadline = time.monotonic() + timeout
        while True:
            ip = vm.guest.ipAddress if vm.guest else None
            if ip:
                return ip
            if time.monotonic() >= deadline:
                raise TargetError(f"VM {name} reports no IP address",
                                  "power it on and wait for VMware Tools to start, or launch through Guest Operations")
            time.sleep(2)

    @staticmethod
    def wait(task: vim.Task, timeout: float, what: str) -> None:
        """Wait for a vCenter task; raises TargetError with vCenter's message on failure."""
        deadline = time.monotonic() + timeout
        while task.info.state in (vim.TaskInfo.State.queued, vim.TaskInfo.State.running):
            if time.monotonic() > deadline:
                raise TargetError(f"{what} did not finish within {timeout:.0f} s", "look at the task in vSphere Client")
            time.sleep(0.5)
        if task.info.state != vim.TaskInfo.State.success:
            message = getattr(task.info.error, "msg", None) or str(task.info.error)
            raise TargetError(f"{what} failed: {message}", "look at the task in vSphere Client")


def connect_vcenter(vcenter: VCenter, password: str, *, protocol: str = "https",
                    timeout: float = TIMEOUT_S) -> VCenterSession:
    """Log in to ``vcenter``. TLS is verified; a pinned thumbprint trusts a self-signed certificate.

    Raises :class:`UntrustedCertificate` (with the thumbprint to show) on first contact with
    an untrusted certificate, :class:`CertificateChanged` when it differs from the pin, and
    :class:`ConnectionFailed` for network and login failures. ``protocol="http"`` exists for
    the test simulator only.
    """
    kwargs: dict = {"host": vcenter.host, "port": int(vcenter.port), "user": vcenter.user, "pwd": password,
                    "protocol": protocol, "httpConnectionTimeout": int(timeout)}
    pinned = normalize_thumbprint(vcenter.thumbprint) if vcenter.thumbprint else ""
    if protocol == "https":
        info = fetch_certificate(vcenter.host, vcenter.port, timeout)
        if pinned:
            if info.thumbprint != pinned:
                raise CertificateChanged(vcenter.host, vcenter.port, pinned, info.thumbprint)
            kwargs["sslContext"] = pinned_context(info.der)
        elif not info.system_trusted:
            raise UntrustedCertificate(vcenter.host, vcenter.port, info.thumbprint, info.subject, info.reason)
        else:
            kwargs["sslContext"] = ssl.create_default_context()
    try:
        si = SmartConnect(**kwargs)
    except vim.fault.InvalidLogin:
        raise ConnectionFailed(f"vCenter {vcenter.host} refused the login of {vcenter.user}",
                               "check the user and the password saved for it") from None
    except ssl.SSLCertVerificationError:
        # Only the pinned certificate verifies: the server switched certificates since the check above.
        got = fetch_certificate(vcenter.host, vcenter.port, timeout).thumbprint
        raise CertificateChanged(vcenter.host, vcenter.port, pinned or "(system trust)", got) from None
    except ssl.SSLError as exc:
        raise ConnectionFailed(f"TLS with {vcenter.host} failed: {exc}", "check the certificate and pin it again") from None
    except Exception as exc:  # pyvmomi raises many kinds (socket, http.client, vmodl faults ...)
        raise ConnectionFailed(f"cannot connect to vCenter {vcenter.host}:{vcenter.port}: {exc}",
                               "check the address and that vCenter is running") from None
    return VCenterSession(si, vcenter)
