"""SSH connections (paramiko) with the app's own known_hosts and keyring passwords.

Host keys: the app keeps a known_hosts file of its own. An unknown host raises
:class:`UntrustedHostKey` with the fingerprint for the user to compare and pin with
:func:`trust_host_key`; a host whose key differs from the pinned one raises
:class:`HostKeyChanged` and nothing is sent to it. Passwords come from the keyring and are
handed to paramiko only; they are never logged or written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import socket
from pathlib import Path
from typing import Sequence

import paramiko

from trainer.fsutil import atomic_write_text

from . import commands
from .credentials import load_password, require_password
from .errors import ConnectionFailed, HostKeyChanged, UntrustedHostKey
from .model import SshTarget
from .shell import CommandResult

CONNECT_TIMEOUT_S = 15.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA-256 fingerprint of a host key (``SHA256:...``, as ``ssh-keygen -lf`` prints)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """The name of a host in known_hosts (``[host]:port`` unless the port is 22)."""
    return host if port == 22 else f"[{host}]:{port}"


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """Never trust silently: report the key so the user can decide."""

    def __init__(self, port: int) -> None:
        self.port = port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        host = hostname[1:].rsplit("]:", 1)[0] if hostname.startswith("[") else hostname
        raise UntrustedHostKey(host, self.port, key.get_name(), fingerprint(key), key)


def trust_host_key(known_hosts: Path | str, host: str, port: int, key: paramiko.PKey) -> None:
    """Pin ``key`` for ``host:port`` in the app's known_hosts (the user confirmed its fingerprint).

    An older key of the same type for that host is replaced: this is the explicit "the host
    was reinstalled" action.
    """
    path = Path(known_hosts)
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    keys.add(known_hosts_name(host, port), key.get_name(), key)
    # HostKeys.save() is not atomic: write the same lines ourselves (hashed names stay hashed).
    lines = [f"{name} {kind} {entry.get_base64()}\n" for name in keys for kind, entry in keys[name].items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(lines))


def connect(target: SshTarget, known_hosts: Path | str, timeout: float = CONNECT_TIMEOUT_S) -> paramiko.SSHClient:
    """An authenticated SSH client for ``target``; raises a TargetError subclass with a hint."""
    client = paramiko.SSHClient()
    known = Path(known_hosts)
    if known.exists():
        client.load_host_keys(str(known))
    client.set_missing_host_key_policy(_RefuseUnknown(target.port))
    kwargs: dict = {"hostname": target.host, "port": int(target.port), "username": target.user,
                    "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout}
    if target.auth == "password":
        kwargs.update(password=require_password(target.secret_account(), f"SSH host {target.host}"),
                      allow_agent=False, look_for_keys=False)
    elif target.auth == "key":
        key_file = str(Path(target.key_file).expanduser())
        kwargs.update(key_filename=key_file, passphrase=load_password(target.secret_account()),
                      allow_agent=False, look_for_keys=False)
    else:
        kwargs.update(allow_agent=True, look_for_keys=True)
    where = f"{target.user}@{target.host}:{target.port}"
    try:
        client.connect(**kwargs)
    except (UntrustedHostKey,):
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyChanged(target.host, target.port, fingerprint(exc.expected_key), fingerprint(exc.key)) from None
    except paramiko.AuthenticationException:
        client.close()
        raise ConnectionFailed(f"{where} refused the login ({target.auth})",
                               "check the user and the key or password; for a key, its public half must be in the "
                               "host's ~/.ssh/authorized_keys") from None
    except (socket.timeout, TimeoutError):
        client.close()
        raise ConnectionFailed(f"{where} did not answer within {timeout:.0f} s",
                               "check that the machine is on and the host and port are right") from None
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise ConnectionFailed(f"cannot connect to {where}: {_reason(exc)}",
                               "check the host name, the port and that sshd runs there") from None
    return client


def _reason(exc: Exception) -> str:
    """Why a connection failed, in the system's words: ``connection refused``, ``name or service not known``.

    paramiko reports a refused port as "[Errno None] Unable to connect to port 22 on 10.0.0.5", with the
    system's reasons, one per address tried, inside it.
    """
    errors = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError: {address: OSError}
    causes = list(errors.values()) if isinstance(errors, dict) and errors else [exc]
    reasons = dict.fromkeys((getattr(e, "strerror", None) or str(e)) for e in causes)
    return "; ".join(reason[:1].lower() + reason[1:] for reason in reasons)


class SshShell:
    """Commands on an SSH target, each through ``/bin/sh -c`` whatever the user's login shell is."""

    def __init__(self, target: SshTarget, known_hosts: Path | str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.target = target
        self.host = target.host
        self.client = connect(target, known_hosts, timeout)

    def run_script(self, script: str, timeout: float = 60.0) -> CommandResult:
        """Run a /bin/sh script on the target and wait for it."""
        try:
            _, stdout, stderr = self.client.exec_command("/bin/sh -c " + shlex.quote(script), timeout=timeout)
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            code = stdout.channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            return CommandResult(124, "", f"timed out after {timeout:.0f} s on {self.host}")
        except (OSError, paramiko.SSHException) as exc:
            raise ConnectionFailed(f"the connection to {self.host} failed: {exc}", "check the network and try again") from None
        return CommandResult(code, out, err)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> CommandResult:
        """Run one command on the target, each argument quoted."""
        return self.run_script(commands.join(argv), timeout)

    def close(self) -> None:
        """Close the connection (detached trainers keep running)."""
        self.client.close()

    def __enter__(self) -> "SshShell":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
