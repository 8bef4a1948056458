"""Two SSH hosts on one machine for multi-node tests: two sshd processes, the second in a network
namespace of its own joined to this one by a veth pair, so that each has its own address and
its own loopback (what one node calls 127.0.0.1 is not the other's). Without root or ``ip
netns`` both servers listen on loopback instead, and :attr:`Cluster.separate` is False.
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

from tests.cli_helpers import free_port

from .conftest import SSHD, SshServer, _keygen, die_with_parent


@dataclass
class Cluster:
    """Node a (this namespace) and node b (its own namespace when ``separate``), and how they talk."""

    a: SshServer              # host: node a's address on the link between the nodes
    b: SshServer
    a_loopback: SshServer     # node a reached at 127.0.0.1: an address node b cannot reach
    interface_a: str
    interface_b: str
    separate: bool            # True: separate network namespaces (separate hosts)
    netns: str = ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def netns_works() -> bool:
    """Root with a working ``ip netns`` (checked by making and removing a namespace)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    probe = f"lsprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
        return True
    except (subprocess.CalledProcessError, OSError):
        return False


def _sshd_config(folder: Path, port: int, listen: list[str], host_key: Path, authorized: Path) -> Path:
    config = folder / "sshd_config"
    config.write_text("\n".join([f"Port {port}", *[f"ListenAddress {a}" for a in listen], f"HostKey {host_key}",
                                 f"PidFile {folder}/sshd.pid", f"AuthorizedKeysFile {authorized}",
                                 "PubkeyAuthentication yes", "PasswordAuthentication no",
                                 "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                                 "PermitRootLogin prohibit-password", "LogLevel VERBOSE", ""]))
    return config


def _start_sshd(folder: Path, port: int, listen: list[str], user_key: Path, netns: str = "") -> tuple[SshServer,
                                                                                                      subprocess.Popen]:
    folder.mkdir(parents=True)
    host_key = folder / "host_ed25519"
    _keygen(host_key)
    authorized = folder / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    config = _sshd_config(folder, port, listen, host_key, authorized)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = folder / "sshd.log"
    argv = [SSHD, "-D", "-e", "-f", str(config)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    process = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               preexec_fn=die_with_parent)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection((listen[0], port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace')}")
            time.sleep(0.1)
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    server = SshServer(listen[0], port, user, host_key.with_suffix(".pub"), user_key, user_key, folder, log, process)
    return server, process


def _link_addresses() -> tuple[str, str]:
    """Two addresses on a /30 of 10.224.0.0/12 that no interface here uses (from the pid: runs in parallel differ)."""
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for attempt in range(64):
        block = (os.getpid() * 7 + attempt * 13) % (1 << 18)
        base = (10 << 24) | (224 << 16) | (block << 2)
        a, b = (socket.inet_ntoa((base + i).to_bytes(4, "big")) for i in (1, 2))
        if f" {a}/" not in used and f" {b}/" not in used:
            return a, b
    raise RuntimeError("no free link addresses")


def start_cluster(folder: Path) -> tuple[Cluster, callable]:
    """Start both hosts; returns the cluster and a function that takes it all down again."""
    user_key = folder / "user_ed25519"
    _keygen(user_key)
    processes: list[subprocess.Popen] = []
    if not netns_works():
        port_a, port_b = free_port(), free_port()
        a, pa = _start_sshd(folder / "a", port_a, ["127.0.0.1"], user_key)
        b, pb = _start_sshd(folder / "b", port_b, ["127.0.0.1"], user_key)
        processes += [pa, pb]
        return Cluster(a, b, a, "lo", "lo", separate=False), lambda: _stop(processes, "")
    tag = str(os.getpid())[-6:]
    netns, veth_a, veth_b = f"lsmn{tag}", f"lsa{tag}", f"lsb{tag}"
    addr_a, addr_b = _link_addresses()
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_b, "netns", netns)
        _ip("addr", "add", f"{addr_a}/30", "dev", veth_a)
        _ip("link", "set", veth_a, "up")
        for args in (("addr", "add", f"{addr_b}/30", "dev", veth_b), ("link", "set", veth_b, "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", netns, "ip", *args)
        port_a, port_b = free_port(), free_port()
        a, pa = _start_sshd(folder / "a", port_a, [addr_a, "127.0.0.1"], user_key)
        processes.append(pa)
        b, pb = _start_sshd(folder / "b", port_b, [addr_b], user_key, netns)
        processes.append(pb)
    except Exception:
        _stop(processes, netns)
        raise
    loopback = SshServer("127.0.0.1", port_a, a.user, a.host_key_pub, user_key, user_key, a.folder, a.log, pa)
    return Cluster(a, b, loopback, veth_a, veth_b, True, netns), lambda: _stop(processes, netns)


def _stop(processes: list[subprocess.Popen], netns: str) -> None:
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    if netns:
        # Whatever a test started in there and left running (by pid), then the namespace and its veth.
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
