"""Passwords in the OS keyring (never in settings, run files or logs).

Accounts are named by the targets (``SshTarget.secret_account()`` and friends). Every
function here raises :class:`TargetError` with a hint when no keyring is usable, instead
of letting keyring's backend errors reach the user.
"""

from __future__ import annotations

import keyring
import keyring.errors

from .errors import TargetError

SERVICE = "lora-studio"


def store_password(account: str, password: str) -> None:
    """Save ``password`` for ``account`` in the OS keyring."""
    try:
        keyring.set_password(SERVICE, account, password)
    except keyring.errors.KeyringError as exc:
        raise TargetError(f"cannot save the password of {account} in the system keyring: {exc}",
                          "unlock or install a keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential "
                          "Manager), or use an SSH key instead") from None


def load_password(account: str) -> str | None:
    """The saved password of ``account``, or None when there is none."""
    try:
        return keyring.get_password(SERVICE, account)
    except keyring.errors.KeyringError as exc:
        raise TargetError(f"cannot read the password of {account} from the system keyring: {exc}",
                          "unlock the system keyring and try again") from None


def forget_password(account: str) -> None:
    """Remove the saved password of ``account`` (no error when there is none)."""
    try:
        keyring.delete_password(SERVICE, account)
    except keyring.errors.PasswordDeleteError:
        pass
    except keyring.errors.KeyringError as exc:
        raise TargetError(f"cannot remove the password of {account}: {exc}", "unlock the system keyring") from None


def require_password(account: str, what: str) -> str:
    """The saved password of ``account``; a clear error when it was never saved."""
    password = load_password(account)
    if password is None:
        raise TargetError(f"no password is saved for {what} ({account})", "enter the password in the Targets panel")
    return password
