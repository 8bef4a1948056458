"""Remote command lines: every part quoted, so hostile names stay names (run through a real /bin/sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lora_studio.targets import commands
from lora_studio.targets.shell import LocalShell

from .helpers import wait_for

HOSTILE = ["a b; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "it's \"quoted\"", "ünïcödé ☃ 名前",
           "x\ny; touch PWNED", "-rf", "*", "~", "$HOME", "a|b&c>d<e", "'; touch PWNED; '"]


@pytest.mark.parametrize("name", HOSTILE)
def test_join_round_trips_through_sh(tmp_path, name):
    out = subprocess.run(["/bin/sh", "-c", commands.join(["printf", "%s", name])], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out == name
    assert not list(tmp_path.iterdir()), "something was created: the name was executed"


def test_detached_launch_runs_in_a_hostile_folder_and_prints_the_pid(tmp_path):
    folder = tmp_path
    for part in HOSTILE[:5]:
        folder = folder / part
    folder.mkdir(parents=True)
    marker = "ünï $(touch PWNED) done"
    script = commands.detached_launch(["/bin/sh", "-c", 'printf "%s|%s" "$PWD" "$1"', "sh", marker], str(folder))
    result = LocalShell().run_script(script)
    assert result.ok, result.stderr
    assert result.stdout.strip().isdigit()
    log = folder / "train.log"
    wait_for(lambda: log.exists() and "|" in log.read_text(), 10, "the detached command's output")
    assert log.read_text() == f"{folder}|{marker}"
    assert not list(Path(tmp_path).rglob("PWNED")) and not Path("PWNED").exists()


def test_env_names_are_checked_and_values_quoted():
    assert commands.env_prefix({"CUDA_VISIBLE_DEVICES": "0,1", "X": "$(touch PWNED)"}) == \
        "CUDA_VISIBLE_DEVICES=0,1 X='$(touch PWNED)' "
    with pytest.raises(ValueError):
        commands.env_prefix({"A;B": "1"})


def test_pids_and_signals_are_not_text():
    assert commands.signal_process(12, "TERM") == "kill -TERM 12"
    with pytest.raises(ValueError):
        commands.signal_process("1; reboot", "TERM")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        commands.signal_process(1, "TERM; reboot")
