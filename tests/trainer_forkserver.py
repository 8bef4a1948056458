"""A fork server for the tests' trainer processes: `python tests/trainer_forkserver.py SOCKET`.

Every trainer process spends ~4.5 s importing torch, diffusers, transformers and peft before
it does anything, and the suite starts about a hundred of them. This server imports those
libraries once (the way `python -m trainer` does: offline mode first) and forks a fresh
process per request, which then runs `python -m trainer ARGS` for real: the trainer's own
code, its own pid, signals, exit code, files and output. Only the interpreter's start-up is
shared. Tests about a fresh interpreter (offline mode set by our code, what imports what)
start their own processes instead.

Protocol (one connection per trainer process): the client sends one JSON line
``{"args": [...], "cwd": "...", "env": {...}}`` (the arguments after `-m trainer`) with two file descriptors (stdout, stderr)
attached; the server answers ``{"pid": N}`` once the process runs, then
``{"returncode": R}`` when it ends (negative: killed by that signal, as subprocess says).

The server never runs a torch operation and keeps one thread, so a fork copies no thread
pool and no held lock.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import runpy
import signal
import socket
import sys
import threading

# The trainer's entry, both recipes (diffusers, transformers, peft) and the sampling pipelines.
PRELOADED = ("trainer.cli", "trainer.train_command", "trainer.recipe", "trainer.llm.recipe", "trainer.sampling")
# What runs import later, inside functions: each was ~0.5 s of every forked run's time.
PRELOADED_LATER = ("torch.utils.tensorboard",)


def _preload() -> None:
    """Import what a training run imports, in the trainer's order (offline mode first).

    Then every other trainer module (each family's model code and what it imports at the top,
    ~0.8 s once) and PIL's image plugins, which a run would otherwise import in every fork.
    """
    from trainer.models.offline import enable_offline_mode
    enable_offline_mode()
    for name in PRELOADED + PRELOADED_LATER:
        importlib.import_module(name)
    import trainer
    for module in pkgutil.walk_packages(trainer.__path__, "trainer."):
        if not module.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(module.name)
    from PIL import Image
    Image.init()


def _run_trainer(request: dict, out_fd: int, err_fd: int) -> None:
    """In the forked child: become `python -m trainer ARGS` in the request's folder and environment."""
    os.setpgid(0, 0)  # a process group of its own, as a fresh subprocess would be signalled alone
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (devnull, out_fd, err_fd):
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    threads = request["env"].get("OMP_NUM_THREADS", "")
    if threads.isdigit():  # a fresh interpreter reads it at start-up; a fork has the server's thread count
        import torch
        torch.set_num_threads(int(threads))
    sys.argv = ["trainer", *request["args"]]  # run_module puts the module's path first
    code = 0
    try:
        runpy.run_module("trainer", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # what an uncaught exception does to a fresh interpreter
        import traceback
        traceback.print_exc()
        code = 1
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _serve_one(connection: socket.socket) -> None:
    """In a forked waiter: start the trainer process, report its pid, wait, report how it ended."""
    message, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 2)
    request = json.loads(message.decode("utf-8"))
    pid = os.fork()
    if pid == 0:
        connection.close()
        _run_trainer(request, *fds)
    for fd in fds:
        os.close(fd)
    connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    connection.sendall(json.dumps({"returncode": code}).encode() + b"\n")


def serve(path: str) -> None:
    """Preload, say ``ready`` on stdout, then fork a waiter per connection until stdin closes."""
    _preload()
    assert threading.active_count() == 1, "the preloaded libraries started threads: forking would copy their locks"
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters reap themselves
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the waiter waits for its trainer
            try:
                _serve_one(connection)
            finally:
                os._exit(0)
        connection.close()


if __name__ == "__main__":
    serve(sys.argv[1])
