"""Installing the trainer on a target from a wheel on the shared storage.

GPU VMs often have no internet: the studio keeps ``lora_studio-*.whl`` on the share and
each target installs it into a venv of its own. pip resolves the trainer's dependencies
from the target's configured index (or a wheelhouse next to the wheel, when given).
"""

from __future__ import annotations

import posixpath

from . import commands
from .errors import TargetError
from .shell import CommandResult, Shell

DEFAULT_VENV = "~/.local/share/lora-studio/venv"


def install_script(wheel: str, venv: str = DEFAULT_VENV, base_python: str = "python3",
                   wheelhouse: str | None = None) -> str:
    """A /bin/sh script that creates ``venv`` (if needed) and pip-installs ``wheel[trainer]`` into it."""
    # "~" must expand on the target, so it is kept outside the quotes.
    venv_q = ('"$HOME"/' + commands.join([venv[2:]])) if venv.startswith("~/") else commands.join([venv])
    pip = f"{venv_q}/bin/python -m pip"
    extra = f" --find-links {commands.join([wheelhouse])}" if wheelhouse else ""
    # cd /: run from no particular folder, so a "trainer" folder in the login's home cannot
    # shadow the installed package when `python -m trainer` checks the result.
    return (f"set -e; cd /; [ -x {venv_q}/bin/python ] || {commands.join([base_python])} -m venv {venv_q}; "
            f"{pip} install --upgrade{extra} {commands.join([wheel + '[trainer]'])}; "
            f"{venv_q}/bin/python -m trainer doctor --json > /dev/null; echo; echo {venv_q}/bin/python")


def install_trainer(shell: Shell, wheel: str, venv: str = DEFAULT_VENV, base_python: str = "python3",
                    wheelhouse: str | None = None, timeout: float = 1800.0) -> tuple[str, CommandResult]:
    """Install the trainer from ``wheel`` (a path as the target sees it); returns the venv's python.

    The caller then sets the target's ``python`` to the returned interpreter.
    """
    if not (venv.startswith("/") or venv.startswith("~/")):
        raise TargetError(f"venv folder {venv!r} is not absolute", "use an absolute path or one starting with ~/")
    if not posixpath.basename(wheel).endswith(".whl"):
        raise TargetError(f"{wheel} is not a wheel file", "choose the lora_studio-*.whl file on the shared storage")
    result = shell.run_script(install_script(wheel, venv, base_python, wheelhouse), timeout=timeout)
    if not result.ok:
        raise TargetError(f"installing the trainer on {shell.host} failed: {result.stderr.strip()[-500:]}",
                          "check that the target has python3-venv and can reach a package index or the wheelhouse")
    lines = result.stdout.strip().splitlines()
    return lines[-1].strip() if lines else venv.rstrip("/") + "/bin/python", result
