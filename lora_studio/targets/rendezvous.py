"""Network checks before a multi-node run: every node reaches the rendezvous port, and has its interface.

torchrun's c10d rendezvous waits (for ten minutes by default) for nodes that never come when
they cannot reach the first node; the user sees nothing but a hang. So before the start, the
first node listens on the rendezvous port with a tiny Python program (the trainer's Python is
there: the preflight just ran its doctor) and every node, the first included, connects to
``host:port`` exactly as torchrun will. The listener answers with a token, so a node that
reaches some other service on that port does not pass. A failure names the node, the host and
the port. The interface of ``network_interface`` must exist on its node (``/sys/class/net``).
"""

from __future__ import annotations

import secrets
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import commands
from .launch import target_python
from .model import Target
from .preflight import ERROR, OK, PreflightReport
from .shell import Shell

CONNECT_TIMEOUT_S = 5.0
LISTEN_LIFETIME_S = 120  # the listener ends by itself even if the preflight that started it died

# Binds the port (0: any free one) on every address, like torchrun's TCPStore, and prints it.
# Each client gets the token; the listener then waits for the client to close first, so that
# the TIME_WAIT stays on the client's side and the port is free for torchrun at once.
_LISTENER = r"""
import socket, sys, time
port, token, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
try:
    try:
        server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    except (OSError, ValueError):
        server = socket.create_server(("", port))
except OSError as exc:
    print("BIND", exc.strerror or exc, flush=True)
    sys.exit(3)
print("LISTENING", server.getsockname()[1], flush=True)
server.settimeout(0.5)
end = time.monotonic() + lifetime
while time.monotonic() < end:
    try:
        conn, _ = server.accept()
    except OSError:
        continue
    with conn:
        conn.settimeout(5)
        try:
            conn.sendall((token + "\n").encode())
            conn.recv(1)
        except OSError:
            pass
"""

_CONNECTOR = r"""
import socket, sys
host, port, token, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
try:
    conn = socket.create_connection((host, port), timeout=timeout)
except socket.timeout:
    print(f"no answer within {timeout:.0f} s (a firewall may drop the packets)")
    sys.exit(3)
except OSError as exc:
    print(exc.strerror or exc)
    sys.exit(3)
data = b""
with conn:
    try:
        while not data.endswith(b"\n") and len(data) < 200:
            chunk = conn.recv(200)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        print(exc.strerror or exc)
        sys.exit(3)
if data.decode("utf-8", "replace").strip() != token:
    print("another program answers on that port")
    sys.exit(4)
print("OK")
"""


@dataclass(frozen=True)
class NodeShell:
    """A node of the run and an open shell on it (``shell.host`` is the address the app reached)."""

    target: Target
    shell: Shell


def python_code(target: Target, code: str, *args: str) -> list[str]:
    """``python -c CODE ARGS`` with ``target``'s trainer interpreter."""
    python = target_python(target)
    return [*(shlex.split(python) if python.strip() else ["python3"]), "-c", code, *args]


def endpoint_text(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listener(node: NodeShell, port: int, token: str) -> tuple[int | None, int | None, str]:
    """Start the listener detached on ``node``: (its pid, the port it listens on, why it could not)."""
    argv = python_code(node.target, _LISTENER, str(int(port)), token, str(LISTEN_LIFETIME_S))
    # Detached (setsid, output in a file) so that the shell call returns while it listens.
    script = (f"out=$(mktemp 2>/dev/null || echo /tmp/.lora-studio-rdzv-$$); "
              f"setsid nohup {commands.join(argv)} > \"$out\" 2>&1 < /dev/null & pid=$!; n=0; "
              f"while [ $n -lt 150 ]; do grep -q -e '^LISTENING ' -e '^BIND ' \"$out\" && break; "
              f"kill -0 $pid 2>/dev/null || break; sleep 0.1; n=$((n+1)); done; "
              f"echo \"PID $pid\"; cat \"$out\"; rm -f \"$out\"")
    result = node.shell.run_script(script, timeout=60)
    pid = listening = None
    problem = ""
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "PID" and rest.strip().isdigit():
            pid = int(rest)
        elif word == "LISTENING" and rest.strip().isdigit():
            listening = int(rest)
        elif word == "BIND":
            problem = rest.strip()
    if listening is None and not problem:
        problem = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines()
                   or [f"exit {result.returncode}"])[-1]
    return pid, listening, problem


def probe(node: NodeShell, host: str, port: int, token: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Connect from ``node`` to ``host:port``; '' when it reached the listener, else why not."""
    result = node.shell.run(python_code(node.target, _CONNECTOR, host, str(port), token, str(timeout)),
                            timeout=timeout + 30)
    if result.ok and result.stdout.strip().endswith("OK"):
        return ""
    return (result.stdout.strip() or result.stderr.strip() or f"exit {result.returncode}").splitlines()[-1]


def check_rendezvous(nodes: list[NodeShell], port: int, report: PreflightReport) -> int | None:
    """Every node reaches the first node's rendezvous ``port`` (0: a free one); returns the port, or None."""
    first = nodes[0]
    host = first.shell.host
    token = secrets.token_hex(8)
    pid, listening, problem = open_listener(first, port, token)
    if listening is None:
        wanted = f"TCP port {port}" if port else "a free TCP port"
        report.add("rendezvous", ERROR, f"{first.target.name} ({host}) cannot listen on {wanted} for the rendezvous: "
                   f"{problem}", "choose another rendezvous port (0 takes any free one), or end the program using it")
        return None
    try:
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            answers = list(pool.map(lambda node: probe(node, host, listening, token), nodes))
    finally:
        if pid is not None:
            first.shell.run_script(f"kill {int(pid)} 2>/dev/null; true", timeout=30)
    endpoint = endpoint_text(host, listening)
    failed = False
    for node, answer in zip(nodes, answers):
        if not answer:
            continue
        failed = True
        report.add("rendezvous", ERROR,
                   f"{node.target.name} ({node.shell.host}) cannot reach the rendezvous at {endpoint} "
                   f"(host {host}, port {listening}) on {first.target.name}: {answer}",
                   f"every node must reach {host} on TCP port {listening}: give {first.target.name} an address the "
                   "other nodes can reach (not localhost), open the port in its firewall, and put the nodes on one "
                   "network (a target's network interface picks it)")
    if failed:
        return None
    report.add("rendezvous", OK, f"every node reaches the rendezvous at {endpoint}")
    return listening


def check_interface(node: NodeShell, report: PreflightReport) -> bool:
    """The target's ``network_interface`` (each of a comma list) exists on the node; True when fine or unset."""
    wanted = [name.strip() for name in node.target.network_interface.split(",") if name.strip()]
    if not wanted:
        return True
    result = node.shell.run_script("ls /sys/class/net 2>/dev/null", timeout=30)
    present = result.stdout.split()
    if not present:
        return True  # not Linux, or no sysfs: NCCL and gloo will say it themselves
    # "^eth0" excludes an interface (NCCL), "=eth0" asks for that exact name, "eth" for any eth*.
    missing = [name for name in wanted if not name.startswith("^")
               and not any(have == name.lstrip("=") or (not name.startswith("=") and have.startswith(name))
                           for have in present)]
    if missing:
        report.add("network_interface", ERROR,
                   f"{node.target.name} ({node.shell.host}) has no network interface {', '.join(missing)} "
                   f"(it has {', '.join(present)})",
                   "set the target's network interface to one of these in the Targets panel, or leave it empty")
        return False
    report.add("network_interface", OK, f"{node.target.name} talks over {node.target.network_interface}")
    return True
