"""Errors of the targets package: each says what went wrong and what to do about it."""

from __future__ import annotations

from trainer.problems import ExplainedError


class TargetError(ExplainedError):
    """A target operation failed; ``hint`` says what the user can do about it."""

    def __str__(self) -> str:
        return self.explained()  # the app shows str(error) in dialogs and logs: the hint belongs there


class TargetConfigError(TargetError):
    """A target's settings are wrong (a missing host, a bad path mapping, ...)."""


class ConnectionFailed(TargetError):
    """The target could not be reached or refused the login."""


class UntrustedHostKey(TargetError):
    """First contact with an SSH host: the caller shows the fingerprint and may pin it.

    ``key`` is the paramiko key to hand to :func:`lora_studio.targets.ssh.trust_host_key`.
    """

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, key: object) -> None:
        super().__init__(f"{host}:{port} is not a known host; its {key_type} key fingerprint is {fingerprint}",
                         "compare the fingerprint with the one the host's admin gives you, then trust it")
        self.host, self.port, self.key_type, self.fingerprint, self.key = host, port, key_type, fingerprint, key


class HostKeyChanged(TargetError):
    """The SSH host presented a key other than the pinned one: refused, possibly an attack."""

    def __init__(self, host: str, port: int, expected: str, got: str) -> None:
        super().__init__(
            f"the host key of {host}:{port} has CHANGED (pinned {expected}, offered {got}); refusing to connect",
            "someone may be intercepting the connection; if the host was reinstalled, ask its admin for the new "
            "fingerprint and remove the old entry from the app's known_hosts before trusting it")
        self.host, self.port, self.expected, self.got = host, port, expected, got


class UntrustedCertificate(TargetError):
    """A vCenter's TLS certificate is not trusted by the system: the caller may pin its thumbprint."""

    def __init__(self, host: str, port: int, thumbprint: str, subject: str, reason: str) -> None:
        super().__init__(f"the TLS certificate of {host}:{port} is not trusted ({reason}); "
                         f"its SHA-256 thumbprint is {thumbprint} (subject {subject})",
                         "compare the thumbprint with the one shown in vCenter's appliance console, then trust it")
        self.host, self.port, self.thumbprint, self.subject, self.reason = host, port, thumbprint, subject, reason


class CertificateChanged(TargetError):
    """A vCenter presented a certificate other than the pinned one: refused."""

    def __init__(self, host: str, port: int, expected: str, got: str) -> None:
        super().__init__(f"the TLS certificate of {host}:{port} has CHANGED (pinned {expected}, offered {got}); "
                         "refusing to connect",
                         "if vCenter's certificate was renewed, check the new thumbprint with its admin and trust it again")
        self.host, self.port, self.expected, self.got = host, port, expected, got


class LaunchFailed(TargetError):
    """The trainer could not be started on the target."""
