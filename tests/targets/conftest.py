"""Fixtures with real parts for the targets tests: an OpenSSH server on loopback, govmomi's
vCenter simulator over TLS, an in-memory keyring and the trainer's demo workspace.

A test that needs a component this machine lacks skips with the reason (CI installs all
of them through scripts/system-packages.txt, so nothing skips there).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backend
import pytest

from tests.cli_helpers import free_port, make_demo_workspace

from .helpers import ROOT, pid_alive

SSHD = "/usr/sbin/sshd"
VCSIM_BUILD = ROOT / "tools" / "vcsim" / "build.sh"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that lives in this process only, so tests never touch a real one."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            import keyring.errors
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def memory_keyring():
    """Every targets test gets an empty in-memory keyring."""
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Path:
    """The trainer's demo workspace (tiny model and shapes dataset), made once per session."""
    pytest.importorskip("torch", reason="the tiny model needs torch (pip install -e '.[trainer]')")
    return make_demo_workspace(tmp_path_factory.mktemp("demo") / "workspace")


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when pytest dies, so no server outlives a killed run."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class SshServer:
    """A running sshd on loopback and the keys to reach it."""

    host: str
    port: int
    user: str
    host_key_pub: Path
    user_key: Path              # passphrase-less ed25519
    user_key_encrypted: Path    # the same kind, with PASSPHRASE
    folder: Path
    log: Path
    process: subprocess.Popen

    PASSPHRASE = "correct horse battery staple 7f3a"


def _keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "lora-studio-test", "-f", str(path)],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SshServer:
    """A real OpenSSH server on a loopback port with generated host and user keys."""
    if not Path(SSHD).exists():
        pytest.skip(f"{SSHD} is missing: apt-get install openssh-server (listed in scripts/system-packages.txt)")
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is missing: apt-get install openssh-client")
    folder = tmp_path_factory.mktemp("sshd")
    host_key, user_key, user_key_enc = folder / "host_ed25519", folder / "user_ed25519", folder / "user_enc_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    _keygen(user_key_enc, SshServer.PASSPHRASE)
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "user_ed25519.pub").read_text() + (folder / "user_enc_ed25519.pub").read_text())
    port = free_port()
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
LogLevel VERBOSE
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation folder
    log = folder / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start: {log.read_text(errors='replace')}")
            time.sleep(0.1)
    yield SshServer("127.0.0.1", port, user, folder / "host_ed25519.pub", user_key, user_key_enc, folder, log, process)
    process.terminate()
    process.wait(10)


@dataclass
class Vcsim:
    """A running vCenter simulator."""

    url: str
    host: str
    port: int
    user: str
    password: str
    guest_user: str
    guest_password: str
    process: subprocess.Popen


@pytest.fixture(scope="session")
def vcsim_binary(tmp_path_factory) -> Path:
    """The simulator built by tools/vcsim/build.sh from Debian's Go packages."""
    if not shutil.which("go"):
        pytest.skip("go is missing: apt-get install golang-go golang-github-vmware-govmomi-dev")
    if not Path("/usr/share/gocode/src/github.com/vmware/govmomi/simulator").is_dir():
        pytest.skip("govmomi is missing: apt-get install golang-github-vmware-govmomi-dev")
    done = subprocess.run(["bash", str(VCSIM_BUILD)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"tools/vcsim/build.sh failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def vcsim(vcsim_binary, tmp_path_factory) -> Vcsim:
    """govmomi's vCenter simulator over TLS (self-signed), with a local Guest Operations process manager."""
    log = tmp_path_factory.mktemp("vcsim") / "vcsim.log"  # its own log, out of the test output
    user, password, guest_user, guest_password = "admin@vsphere.local", "vc pass 'x' $(y)", "trainer", "guest-pw-93b1"
    process = subprocess.Popen([str(vcsim_binary), "-tls", "-listen", "127.0.0.1:0", "-user", user,
                                "-password", password, "-guest-user", guest_user, "-guest-password", guest_password],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)
    url = process.stdout.readline().strip()
    if not url.startswith("https://"):
        process.kill()
        pytest.fail(f"vcsim printed no URL: {url!r}\n{log.read_text(errors='replace')}")
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    yield Vcsim(url, host, int(port), user, password, guest_user, guest_password, process)
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def reap_trainers():
    """Pids a test started; any still alive at the end are killed (a failed test leaves nothing running)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
