"""SSH targets against a real OpenSSH server on loopback: host key pinning, preflight, detached
training that survives the client, stop via STOP and via signal, hostile names, no leaked secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from lora_studio.targets import (HostKeyChanged, PathMapping, SshTarget, TargetContext, TargetSettings,
                                 UntrustedHostKey, is_running, launch, list_runs, preflight, save_settings, start, stop,
                                 trust_ssh_host)
from lora_studio.targets.api import open_shell
from lora_studio.targets.credentials import store_password
from lora_studio.targets.ssh import connect, trust_host_key

from .helpers import copy_workspace, pid_alive, wait_for, wait_state, write_config


def ssh_target(sshd, **changes) -> SshTarget:
    fields = dict(name="gpu-ssh", host=sshd.host, port=sshd.port, user=sshd.user, auth="key",
                  key_file=str(sshd.user_key), python=sys.executable)
    fields.update(changes)
    return SshTarget(**fields)


def pinned_context(sshd, tmp_path, *targets) -> TargetContext:
    """A context whose known_hosts already trusts the test server."""
    known = tmp_path / "app" / "known_hosts"
    kind, blob = sshd.host_key_pub.read_text().split()[:2]
    trust_host_key(known, sshd.host, sshd.port, paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob)))
    return TargetContext(TargetSettings(targets=list(targets)), known)


def mapped_workspace(demo_workspace, tmp_path, name="ws", view_name="target-view"):
    """A workspace, and a symlink standing for the target's mount of it (a different path, same files)."""
    workspace = copy_workspace(demo_workspace, tmp_path / name)
    view = tmp_path / view_name
    view.symlink_to(workspace, target_is_directory=True)
    return workspace, view


def test_unknown_host_key_is_reported_with_its_fingerprint_then_pinned(sshd, tmp_path):
    target = ssh_target(sshd)
    ctx = TargetContext(TargetSettings(targets=[target]), tmp_path / "known_hosts")
    with pytest.raises(UntrustedHostKey) as caught:
        connect(target, ctx.known_hosts)
    expected = subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key_pub)], capture_output=True, text=True,
                              check=True).stdout.split()[1]
    assert caught.value.fingerprint == expected
    assert not ctx.known_hosts.exists()  # nothing was trusted silently
    trust_ssh_host(ctx, caught.value)
    assert f"[{sshd.host}]:{sshd.port} ssh-ed25519 " in ctx.known_hosts.read_text()
    with open_shell(target, ctx) as shell:
        assert shell.run(["echo", "hello"]).stdout == "hello\n"


def test_changed_host_key_is_refused(sshd, tmp_path):
    target = ssh_target(sshd)
    known = tmp_path / "known_hosts"
    trust_host_key(known, sshd.host, sshd.port, paramiko.Ed25519Key(filename=str(sshd.user_key)))  # not the host's key
    with pytest.raises(HostKeyChanged, match="has CHANGED") as caught:
        connect(target, known)
    assert caught.value.got == subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key_pub)], capture_output=True,
                                              text=True).stdout.split()[1]
    # The preflight reports it as a blocking problem with what to do.
    config_ws = tmp_path / "ws" / "configs"
    config_ws.mkdir(parents=True)
    (config_ws / "c.yaml").write_text("train_data_dir: ../d\nbase_model: ../m.safetensors\noutput_dir: ../runs/r\n")
    _, report = preflight(target, config_ws / "c.yaml", TargetContext(TargetSettings(targets=[target]), known))
    [check] = [c for c in report.checks if c.name == "reachable"]
    assert check.status == "error" and "CHANGED" in check.message and "known_hosts" in check.hint


def test_preflight_failures_say_what_to_do(sshd, demo_workspace, tmp_path):
    workspace, view = mapped_workspace(demo_workspace, tmp_path)
    config = write_config(workspace, "pf", "runs/pf", max_train_steps=2)
    elsewhere = f"{tmp_path}/not-mounted"  # a folder the host does not have (and not outside the test's own)
    wrong = ssh_target(sshd, python="/nonexistent/python3", mappings=(PathMapping(str(workspace), elsewhere),))
    ctx = pinned_context(sshd, tmp_path, wrong)
    _, report = preflight(wrong, config, ctx)
    by_name = {c.name: c for c in report.checks}
    assert not report.ok
    assert by_name["reachable"].status == "ok"
    assert by_name["shared_files"].status == "error" and "path mapping" in by_name["shared_files"].hint
    assert by_name["trainer"].status == "error" and report.trainer_missing and "install" in by_name["trainer"].hint
    assert by_name["base_model"].status == "error" and f"{elsewhere}/models" in by_name["base_model"].message
    assert by_name["config"].status == "skipped"


@pytest.mark.slow
def test_training_over_ssh_survives_the_client_and_stops_via_stop_file_and_signal(sshd, demo_workspace, tmp_path,
                                                                                  memory_keyring, reap_trainers):
    workspace, view = mapped_workspace(demo_workspace, tmp_path)
    target = ssh_target(sshd, key_file=str(sshd.user_key_encrypted), mappings=(PathMapping(str(workspace), str(view)),))
    store_password(target.secret_account(), sshd.PASSPHRASE)  # the key's passphrase lives in the keyring only
    ctx = pinned_context(sshd, tmp_path, target)
    settings_file = tmp_path / "app" / "targets.json"
    save_settings(settings_file, ctx.settings)
    config = write_config(workspace, "ssh", "runs/ssh run", max_train_steps=2000)
    run_dir = workspace / "runs" / "ssh run"

    outcome = launch(target, config, ctx, workspace=workspace)
    assert outcome.started, outcome.report.summary()
    assert outcome.report.ok and {c.name for c in outcome.report.checks if c.status == "ok"} >= {
        "reachable", "shared_files", "trainer", "base_model", "train_data_dir", "output_dir", "config"}
    pid = outcome.info.pid
    reap_trainers.append(pid)
    # The trainer saw the target's paths, not the desktop's.
    assert outcome.info.config == f"{view}/runs/ssh run/config.yaml"
    # launch() has closed its SSH connection: the trainer runs on, in a session of its own.
    status = wait_state(run_dir, ("training",), timeout=120, min_step=3)
    assert status["pid"] == pid and os.getsid(pid) == pid
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{parent}/comm").read_text().strip() != "sshd"  # nothing of the SSH session holds it
    assert is_running(run_dir, ctx)  # asked over a new SSH connection
    assert [r.state for r in list_runs(workspace)] == ["training"]

    stages: list[str] = []
    result = stop(run_dir, ctx, grace_s=60, poll_s=0.3, on_stage=stages.append)
    assert (result.stage, result.stopped, result.state) == ("stop_file", True, "stopped"), result
    assert stages == ["stop_file"] and not pid_alive(pid)

    # Again (it resumes from the stop's checkpoint), then stop it with SIGTERM over SSH.
    # (start() skips the preflight that just passed.)
    info = start(target, outcome.prepared, ctx)
    reap_trainers.append(info.pid)
    wait_state(run_dir, ("training",), timeout=120, min_step=status["step"] + 2)
    result = stop(run_dir, ctx, use_stop_file=False, kill_after_s=60, poll_s=0.3)
    assert (result.stage, result.stopped, result.state) == ("terminate", True, "stopped"), result
    assert not pid_alive(info.pid)

    # The passphrase never landed in the workspace, the app's files, the run files or the server's log.
    secret = sshd.PASSPHRASE.encode()
    for folder in (workspace, tmp_path / "app", sshd.folder):
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("user_enc"):
                assert secret not in path.read_bytes(), f"the passphrase leaked into {path}"


HOSTILE = ["a b; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "it's \"q\"", "ünï ☃ 名"]


@pytest.mark.slow
def test_hostile_names_are_never_executed(sshd, demo_workspace, tmp_path, reap_trainers):
    hostile_ws = "ws " + HOSTILE[1]
    workspace, view = mapped_workspace(demo_workspace, tmp_path, name=hostile_ws, view_name="view " + HOSTILE[0])
    target = ssh_target(sshd, name="gpu " + HOSTILE[2], mappings=(PathMapping(str(workspace), str(view)),))
    ctx = pinned_context(sshd, tmp_path, target)
    output = "runs/" + "/".join(HOSTILE)
    config = write_config(workspace, "hostile", output, max_train_steps=2, output_name="lora")
    outcome = launch(target, config, ctx, workspace=workspace)
    assert outcome.started, outcome.report.summary()
    reap_trainers.append(outcome.info.pid)
    run_dir = workspace / output
    wait_state(run_dir, ("completed",), timeout=150)
    assert (run_dir / "lora.safetensors").exists()
    home = Path(os.path.expanduser("~"))
    assert not list(tmp_path.rglob("PWNED")) and not (home / "PWNED").exists() and not Path("/PWNED").exists()
    assert not Path("PWNED").exists()
    [run] = list_runs(workspace)
    assert run.state == "completed" and run.target == target.name


def test_agent_authentication(sshd, tmp_path, monkeypatch):
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        pytest.skip("ssh-agent is missing: apt-get install openssh-client")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, 10, "ssh-agent's socket")
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(sshd.user_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys: the agent is the only way in
        target = ssh_target(sshd, auth="agent", key_file="")
        with open_shell(target, pinned_context(sshd, tmp_path, target)) as shell:
            assert shell.run(["id", "-un"]).stdout.strip() == sshd.user
    finally:
        agent.terminate()
        agent.wait(10)


def test_missing_keyring_password_says_what_to_do(sshd, tmp_path):
    target = ssh_target(sshd, auth="password", key_file="")
    with pytest.raises(Exception, match="no password is saved.*enter the password"):
        connect(target, pinned_context(sshd, tmp_path, target).known_hosts)
