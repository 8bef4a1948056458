"""``python -m lora_studio.vsphere``: trainer VMs, snapshots, clones, storage policies, hosts and
datastores of a vCenter from the command line, for scripts and the IT admin.

The flags of ``new-vm`` follow PowerCLI's ``New-VM`` line the studio used before::

    python -m lora_studio.vsphere new-vm --vcenter vc.lab --user admin@vsphere.local \\
        --name lora-trainer-01 --host esxi-01 --datastore vsanDatastore --disk-gb 200 \\
        --memory-gb 64 --cpus 16 --network Management --template ubuntu-22.04-cuda

Exit codes: 0 done, 1 vCenter or the network failed, 2 bad input (the message names the
option and what exists instead), 130 cancelled. Errors are one line on stderr, never a
traceback; ``--json`` puts the result on stdout as JSON.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Sequence

from pyVmomi import vmodl

from ..targets import credentials
from ..targets.errors import TargetError, UntrustedCertificate
from ..targets.model import VCenter
from ..targets.vsphere import VCenterSession, connect_vcenter, fetch_certificate, normalize_thumbprint
from . import commands
from .errors import BadInput, Cancelled, fault_text

PASSWORD_ENV = "LORA_STUDIO_VCENTER_PASSWORD"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return value


def _whole_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of gigabytes") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive size")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--vcenter", required=True, metavar="HOST[:PORT]", help="vCenter address (port 443 by default)")
    group.add_argument("--user", required=True, help="vCenter user, e.g. administrator@vsphere.local")
    group.add_argument("--password-stdin", action="store_true",
                       help=f"read the password from stdin's first line (else ${PASSWORD_ENV}, else the app's keyring)")
    trust = group.add_mutually_exclusive_group()
    trust.add_argument("--thumbprint", default="", metavar="SHA256",
                       help="trust the vCenter certificate with this SHA-256 thumbprint (a self-signed one)")
    trust.add_argument("--insecure", action="store_true",
                       help="trust whatever certificate vCenter presents now (prints its thumbprint to pin)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _new_vm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="the new VM's name")
    p.add_argument("--template", required=True, help="template (or VM) to clone")
    p.add_argument("--snapshot", default="", help="make a linked clone of the --template VM at this snapshot")
    p.add_argument("--host", default="", help="ESXi host to run on (default: the template's)")
    p.add_argument("--cluster", default="", help="cluster to run in (DRS picks the host when --host is left out)")
    p.add_argument("--resource-pool", default="", help="resource pool (default: the host's or cluster's root pool)")
    p.add_argument("--datastore", default="", help="datastore for the VM's files (default: the template's)")
    p.add_argument("--policy", default="", help="storage policy for the VM and its disks")
    p.add_argument("--cpus", type=_positive_int, default=0, help="virtual CPUs")
    p.add_argument("--memory-gb", type=_gigabytes, default=0.0, help="memory in GB")
    p.add_argument("--disk-gb", type=_gigabytes, default=0.0, help="grow the first disk to this size in GB")
    p.add_argument("--network", default="", help="network (port group) of the first network adapter")
    p.add_argument("--gpu", default="", metavar="DEVICE|any|vgpu:PROFILE",
                   help="a free passthrough GPU of --host by PCI id or name, any free one, or a vGPU profile")
    p.add_argument("--extra-config", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an advanced setting (repeatable)")
    guest = p.add_argument_group("guest setup (cloud-init through guestinfo)")
    guest.add_argument("--share", default="", help="shared storage to mount: server:/export (NFS) or //server/share (SMB)")
    guest.add_argument("--share-kind", default="nfs", choices=("nfs", "smb"))
    guest.add_argument("--mount-point", default="/data/lora", help="where the guest mounts the share")
    guest.add_argument("--wheel", default="", help="lora_studio-*.whl as the guest sees it; installed into a venv")
    guest.add_argument("--ssh-user", default="", help="guest user to create for SSH launches")
    guest.add_argument("--ssh-key-file", default="", help="public key file authorized for --ssh-user")
    power = p.add_argument_group("power")
    power.add_argument("--no-power-on", action="store_true", help="leave the new VM powered off")
    power.add_argument("--wait-ip", type=_seconds, default=600.0, metavar="SECONDS",
                       help="wait this long for VMware Tools and an IP (0: do not wait)")


def _confirm(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do it without asking (scripts)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (every subcommand takes the connection flags and --json)."""
    parser = _Parser(prog="python -m lora_studio.vsphere",
                     description="Trainer VMs, snapshots, clones, storage policies, hosts and datastores of a vCenter.",
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="Exit codes: 0 done, 1 vCenter failed, 2 bad input, 130 cancelled.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        return p

    add("list", "list the VMs with power state, host, CPUs, memory, GPUs and IP")
    _new_vm_flags(add("new-vm", "make a trainer VM from a template (clone, configure, power on, wait for its IP)"))
    p = add("snapshot", "take, list or delete snapshots of a VM")
    p.add_argument("--vm", required=True)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--name", help="take a snapshot with this name")
    action.add_argument("--list", action="store_true", help="list the VM's snapshots")
    action.add_argument("--delete", metavar="NAME", help="delete this snapshot")
    p.add_argument("--description", default="")
    p.add_argument("--memory", action="store_true", help="include the running VM's memory")
    p.add_argument("--quiesce", action="store_true", help="quiesce the guest's file systems (VMware Tools)")
    p.add_argument("--children", action="store_true", help="with --delete: delete its child snapshots too")
    _confirm(p)
    p = add("revert", "revert a VM to one of its snapshots (changes since are lost)")
    p.add_argument("--vm", required=True)
    p.add_argument("--snapshot", required=True)
    _confirm(p)
    p = add("clone", "linked clone of a VM at a snapshot, for an experiment")
    p.add_argument("--vm", required=True)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--name", required=True, help="the clone's name")
    p.add_argument("--gpu", default="same", metavar="same|none|any|DEVICE|vgpu:PROFILE",
                   help="same: a free GPU of the host when the VM has one (default)")
    p.add_argument("--power-on", action="store_true")
    p.add_argument("--wait-ip", type=_seconds, default=0.0, metavar="SECONDS")
    p = add("policies", "list storage policies; create the studio's vSAN policy; apply one; check a VM")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--create", metavar="NAME", help="create a vSAN policy with this name")
    action.add_argument("--apply", metavar="NAME", help="apply this policy to --vm's home and disks")
    action.add_argument("--check", action="store_true", help="preflight --vm: disks' failures to tolerate and HA")
    p.add_argument("--vm", default="")
    p.add_argument("--failures-to-tolerate", type=_whole_or_zero, default=1, help="host failures (1: two replicas)")
    p.add_argument("--iops-limit", type=_whole_or_zero, default=0, help="IOPS limit per disk (0: none)")
    p.add_argument("--thick", action="store_true", help="reserve the disks' full size (default thin)")
    add("hosts", "clusters with HA and DRS, hosts with their GPUs (free or used) and VMs")
    p = add("browse", "list a datastore folder's files through vCenter (read-only)")
    p.add_argument("--datastore", required=True)
    p.add_argument("--folder", default="", help="folder from the datastore's top")
    p.add_argument("--pattern", default="*", help="file name pattern, e.g. *.safetensors")
    return parser


def vcenter_of(address: str, user: str, thumbprint: str) -> VCenter:
    """The :class:`VCenter` for ``HOST[:PORT]`` (``[v6]:port`` for IPv6)."""
    host, port = address.strip(), 443
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:])
    elif host.count(":") == 1:
        host, text = host.split(":")
        port = _port(text)
    if not host:
        raise BadInput("--vcenter", f"{address!r} names no host", "give the vCenter's name or IP, e.g. vc.lab:443")
    if thumbprint:
        try:
            thumbprint = normalize_thumbprint(thumbprint)
        except TargetError as exc:
            raise BadInput("--thumbprint", exc.message, exc.hint) from None
    return VCenter(host, host, user, port, thumbprint)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadInput("--vcenter", f"port {text!r} is not a TCP port", "use 1-65535 (443 by default)")
    return int(text)


def password_for(args: argparse.Namespace, vcenter: VCenter) -> str:
    """The password: stdin's first line, the environment, or what the app saved in the keyring."""
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise BadInput("--password-stdin", "stdin gave no password", "pipe the password in, e.g. from a secrets manager")
        return line
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    saved = credentials.load_password(vcenter.secret_account())
    if saved is None:
        raise BadInput("--user", f"no password for {vcenter.user} at {vcenter.host}",
                       f"set {PASSWORD_ENV}, pass --password-stdin, or save the vCenter in the app's Targets panel")
    return saved


def connect(args: argparse.Namespace) -> VCenterSession:
    """Log in as the connection flags say (TLS verified, or pinned by --thumbprint / --insecure)."""
    vcenter = vcenter_of(args.vcenter, args.user, args.thumbprint)
    password = password_for(args, vcenter)
    if args.insecure:
        # Trust on this use only, but pinned: every request of the session goes to this one certificate.
        thumbprint = fetch_certificate(vcenter.host, vcenter.port).thumbprint
        print(f"warning: --insecure: trusting {vcenter.host}:{vcenter.port} unchecked; its certificate's "
              f"SHA-256 thumbprint is {thumbprint} (pass --thumbprint {thumbprint} once you have checked it)",
              file=sys.stderr)
        vcenter = VCenter(vcenter.name, vcenter.host, vcenter.user, vcenter.port, thumbprint)
    try:
        return connect_vcenter(vcenter, password)
    except UntrustedCertificate as exc:
        raise BadInput("--thumbprint", exc.message,
                       f"compare it with the vCenter's, then pass --thumbprint {exc.thumbprint}") from None


def _cancel_on_ctrl_c() -> threading.Event:
    """A first Ctrl-C cancels the running vCenter task (cleanly); a second one quits at once."""
    event = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        print("cancelling (Ctrl-C again to quit at once)…", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    return event


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    cancel = _cancel_on_ctrl_c()
    try:
        session = connect(args)
        try:
            return commands.run(args, session, cancel.is_set)
        finally:
            session.close()
    except BadInput as exc:
        print(f"error: {exc.explained()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled as exc:
        print(f"cancelled: {exc.explained()}", file=sys.stderr)
        return EXIT_CANCELLED
    except TargetError as exc:
        print(f"error: {exc.explained()}", file=sys.stderr)
        return EXIT_FAILED
    except vmodl.MethodFault as exc:
        print(f"error: vCenter refused: {fault_text(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # a bug or an unforeseen pyvmomi/network error: still one line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
