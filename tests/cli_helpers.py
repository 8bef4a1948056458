"""Helpers shared by the tests that run the real trainer CLI."""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRESH_VARIABLE = "LORA_TESTS_FRESH_TRAINER"  # =1: a fresh interpreter per trainer process


def trainer_cli(*args: str, cwd: Path = ROOT, timeout: int = 600,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m trainer ARGS` in a process of its own (``env``: variables to add) and capture its output.

    The process is forked from the tests' fork server (``tests/trainer_forkserver.py``), which
    has imported torch and the Hugging Face libraries once: the trainer runs for real, only its
    interpreter's start-up is shared. ``LORA_TESTS_FRESH_TRAINER=1`` starts a fresh interpreter
    for every call instead.
    """
    process = trainer_process(*args, cwd=cwd, env=env)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, *process.output())


def trainer_process(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
                    stderr_pipe: bool = False) -> TrainerProcess:
    """Start `python -m trainer ARGS` and return at once: a process to signal, poll and wait for.

    Its output goes to files (read with :meth:`TrainerProcess.output` at the end); with
    ``stderr_pipe``, ``process.stderr`` is a text stream to read lines from while it runs.
    """
    return TrainerProcess(list(args), cwd, {**os.environ, **(env or {})}, stderr_pipe)


class TrainerProcess:
    """A trainer process started by :func:`trainer_process` (the part of ``subprocess.Popen`` the tests use)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], stderr_pipe: bool) -> None:
        self.args = [sys.executable, "-m", "trainer", *args]
        self.returncode: int | None = None
        self._out = tempfile.TemporaryFile()
        self._err = None if stderr_pipe else tempfile.TemporaryFile()
        self.stderr = None
        err_fd = self._err.fileno() if self._err else None
        if stderr_pipe:
            read_end, err_fd = os.pipe()
            self.stderr = os.fdopen(read_end, "r", encoding="utf-8", errors="replace")
        if os.environ.get(FRESH_VARIABLE) == "1":
            self._popen = subprocess.Popen(self.args, cwd=cwd, env=env, stdout=self._out, stderr=err_fd,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            self.pid, self._replies = self._popen.pid, None
            self._pidfd = os.pidfd_open(self.pid)  # what fileno() gives select: readable once it has ended
        else:
            self._popen = None
            self.pid, self._replies = _FORK_SERVER.start(args, cwd, env, self._out.fileno(), err_fd)
        if stderr_pipe:
            os.close(err_fd)

    def fileno(self) -> int:
        """A descriptor that turns readable when the process ends, so ``select`` can wait on several."""
        return self._replies.fileno() if self._popen is None else self._pidfd

    def poll(self) -> int | None:
        """The exit code once it has ended (negative: the signal that killed it), else None."""
        if self.returncode is None:
            if self._popen is not None:
                self._popen_ended(self._popen.poll())
            elif select.select([self._replies], [], [], 0)[0]:
                self._read_returncode()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it ends; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        if self.returncode is None:
            if self._popen is not None:
                self._popen_ended(self._popen.wait(timeout))
            elif not select.select([self._replies], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            else:
                self._read_returncode()
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def output(self) -> tuple[str, str]:
        """Everything it wrote to stdout and (without ``stderr_pipe``) stderr."""
        texts = []
        for file in (self._out, self._err):
            if file is None:
                texts.append("")
                continue
            file.seek(0)
            texts.append(file.read().decode("utf-8", "replace"))
        return texts[0], texts[1]

    def _popen_ended(self, returncode: int | None) -> None:
        self.returncode = returncode
        if returncode is not None:
            os.close(self._pidfd)

    def _read_returncode(self) -> None:
        line = self._replies.readline()
        if not line:
            raise RuntimeError(f"the trainer fork server lost track of pid {self.pid}")
        self.returncode = json.loads(line)["returncode"]
        self._replies.close()


class _ForkServer:
    """The client side of ``tests/trainer_forkserver.py``, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.socket_path = ""

    def _start_server(self) -> None:
        self.socket_path = os.path.join(tempfile.mkdtemp(prefix="trainer-forkserver-"), "socket")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "trainer_forkserver.py"),
                                         self.socket_path], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                        preexec_fn=_die_with_parent)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the trainer fork server did not start (exit {self.process.wait()})")
        atexit.register(self.process.kill)

    def start(self, args: list[str], cwd: Path, env: dict[str, str], out_fd: int, err_fd: int):
        """Fork a trainer process; returns its pid and the stream its exit code will come on."""
        if self.process is None or self.process.poll() is not None:
            self._start_server()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(self.socket_path)
        request = {"args": args, "cwd": str(cwd), "env": env}
        socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], [out_fd, err_fd])
        replies = connection.makefile("r")
        connection.close()  # the file keeps the socket open
        return json.loads(replies.readline())["pid"], replies


def _die_with_parent() -> None:
    """In the fork server before exec: SIGTERM it when the tests' process ends, however it ends."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_FORK_SERVER = _ForkServer()


def make_demo_workspace(root: Path) -> Path:
    """The trainer's demo workspace at ``root``, as `python -m trainer demo --no-train` makes it.

    Its tiny model comes from a forked `make-tiny-model` first (the demo's own call starts a
    fresh interpreter: ~10 s of CPU in imports); the demo then finds it and makes the rest.
    Tests of the demo command itself run it for real.
    """
    from trainer.demo_workspace import MODEL_DIR, MODEL_FILE, create_demo_workspace
    made = trainer_cli("make-tiny-model", str(root / MODEL_DIR))
    assert made.returncode == 0 and (root / MODEL_FILE).exists(), made.stderr
    create_demo_workspace(root)
    return root


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (the kernel's choice, so parallel tests do not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ranks_trainer(config: Path, processes: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    """One node's ``processes`` ranks of `python -m trainer train --config F` (gloo on the CPU, one thread each).

    Each rank is forked from the fork server with the variables torchrun gives its workers, so
    the trainer's multi-process run is real, without torchrun's and every rank's start-up (~5 s
    of CPU each on a quiet machine). Tests of torchrun itself use :func:`torchrun_trainer`.
    When one rank fails, the others are killed (they would wait for it) and its exit code is returned.
    """
    shared = {"WORLD_SIZE": str(processes), "LOCAL_WORLD_SIZE": str(processes), "GROUP_RANK": "0",
              "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    ranks = [trainer_process("train", "--config", str(config),
                             env={**shared, "RANK": str(rank), "LOCAL_RANK": str(rank)}) for rank in range(processes)]
    waiting = list(ranks)
    try:
        while waiting:
            ended, _, _ = select.select(waiting, [], [], timeout)
            if not ended:
                raise subprocess.TimeoutExpired(ranks[0].args, timeout)
            for process in ended:
                waiting.remove(process)
                if process.wait(60):  # failed: the others would wait for it at the next collective
                    waiting.clear()
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
                process.wait(60)
    outputs = [process.output() for process in ranks]
    returncode = next((process.returncode for process in ranks if process.returncode), 0)
    return subprocess.CompletedProcess(ranks[0].args, returncode, "".join(out for out, _ in outputs),
                                       "".join(err for _, err in outputs))


def torchrun_trainer(config: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=N -m trainer train --config F` (gloo on the CPU), one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                           f"--master_port={free_port()}", "-m", "trainer", "train", "--config", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
