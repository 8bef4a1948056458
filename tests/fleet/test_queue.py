"""The queue as files on the share: order, the queued config, moves, cancel, bad input, and claims."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lora_studio.fleet import ClaimHeld, Needs, QueueError, cancel, enqueue, list_queue, move, requeue
from lora_studio.fleet.claim import CLAIM_FILE, read_claim, release, try_claim
from lora_studio.fleet.queue import QUEUE_FILE, QUEUED_CONFIG, read_entry
from lora_studio.targets import TargetConfigError
from lora_studio.targets.prepare import load_for_launch

from .helpers import finish, make_workspace, pretend_running, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / "share")


def _queue(workspace: Path, *names: str, desk: str = "desk-1", needs: Needs = Needs()) -> list[Path]:
    start = time.time()
    for offset, name in enumerate(names):  # queued one after another, as clicks on Start would be
        enqueue(write_config(workspace, name), workspace, needs, desk, now=start + offset)
    return [workspace / "runs" / name for name in names]


def _names(workspace: Path) -> list[str]:
    return [e.name for e in list_queue(workspace)]


def test_queued_runs_come_in_the_order_they_were_queued_and_another_process_sees_the_same_queue(workspace):
    _queue(workspace, "cats", "dogs", "fox")
    assert _names(workspace) == ["cats", "dogs", "fox"]
    entry = list_queue(workspace)[0]
    assert entry.state == "queued" and entry.queued_by == "desk-1" and entry.source_config == "configs/cats.yaml"
    assert entry.waiting and entry.claim is None
    # The app restarted (or another desk opened the workspace): the queue is the files, nothing else.
    code = "import sys; from lora_studio.fleet import list_queue; print(*[e.name for e in list_queue(sys.argv[1])])"
    done = subprocess.run([sys.executable, "-c", code, str(workspace)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cats", "dogs", "fox"]


def test_the_queued_config_is_the_run_as_queued_with_paths_relative_to_its_folder(workspace):
    config = write_config(workspace, "cats", lora_rank=8)
    before = load_for_launch(config)
    enqueue(config, workspace, Needs(), "desk-1")
    run = workspace / "runs" / "cats"
    text = (run / QUEUED_CONFIG).read_text(encoding="utf-8")
    assert str(workspace) not in text.split("\n", 3)[-1]  # no absolute path: another desk mounts the share elsewhere
    write_config(workspace, "cats", lora_rank=32)  # edited after queueing: the queued run keeps what was queued
    queued = load_for_launch(run / QUEUED_CONFIG)
    assert queued["lora_rank"] == 8
    for option in ("train_data_dir", "metadata_path", "base_model", "output_dir"):
        assert Path(queued[option]) == Path(before[option]), option


def test_move_to_top_up_and_down_change_the_order_for_every_desk(workspace):
    a, b, c, d = _queue(workspace, "a", "b", "c", "d")
    move(workspace, c, "top", "desk-2")
    assert _names(workspace) == ["c", "a", "b", "d"]
    move(workspace, d, "up", "desk-2")
    assert _names(workspace) == ["c", "a", "d", "b"]
    move(workspace, c, "down", "desk-2")
    assert _names(workspace) == ["a", "c", "d", "b"]
    move(workspace, a, "up", "desk-2")  # already first: nothing changes
    move(workspace, b, "down", "desk-2")  # already last
    assert _names(workspace) == ["a", "c", "d", "b"]
    assert not list(workspace.glob(f"runs/*/{CLAIM_FILE}"))  # each move let go of its claims


def test_cancel_takes_a_run_out_of_the_queue_but_not_while_another_desk_starts_it(workspace):
    cats, dogs, fox = _queue(workspace, "cats", "dogs", "fox")
    cancel(cats, "desk-2")
    assert _names(workspace) == ["dogs", "fox"]
    assert read_entry(cats).state == "cancelled" and (cats / QUEUED_CONFIG).exists()  # nothing deleted
    claim = try_claim(dogs, "desk-3", "start", "gpu-01")
    with pytest.raises(ClaimHeld, match="desk-3 is starting it on gpu-01"):
        cancel(dogs, "desk-2")
    with pytest.raises(ClaimHeld, match="try again"):
        move(workspace, fox, "up", "desk-2")  # swapping places with dogs needs its claim too
    release(dogs, claim)
    cancel(dogs, "desk-2")
    assert _names(workspace) == ["fox"]
    with pytest.raises(QueueError, match="cancelled"):
        cancel(dogs, "desk-2")  # twice: says where it stands instead of failing obscurely


def test_queueing_refuses_a_run_already_queued_or_still_going_and_a_config_that_is_not_valid(workspace):
    _queue(workspace, "cats")
    with pytest.raises(QueueError, match="cats is already queued .* by desk-1"):
        enqueue(workspace / "configs" / "cats.yaml", workspace, Needs(), "desk-2")
    running = pretend_running(workspace / "runs" / "dogs", "gpu-01")
    with pytest.raises(QueueError, match="still training"):
        enqueue(write_config(workspace, "dogs"), workspace, Needs(), "desk-1")
    finish(running)
    enqueue(workspace / "configs" / "dogs.yaml", workspace, Needs(), "desk-1")  # ended: it may be queued again
    broken = write_config(workspace, "broken", lora_rank=-3)
    with pytest.raises(TargetConfigError, match="lora_rank"):
        enqueue(broken, workspace, Needs(), "desk-1")
    assert _names(workspace) == ["cats", "dogs"]


def test_a_queue_file_that_cannot_be_read_is_shown_as_failed_and_can_be_queued_again(workspace):
    (cats,) = _queue(workspace, "cats")
    (cats / QUEUE_FILE).write_text('{"state": "queu', encoding="utf-8")  # cut short
    [entry] = list_queue(workspace)
    assert entry.state == "failed" and "cannot be read" in entry.error["message"]
    requeue(cats, "desk-1")
    assert [e.state for e in list_queue(workspace)] == ["queued"]


def test_a_claim_is_made_once_released_only_by_its_holder_and_an_unreadable_one_still_counts(workspace):
    (cats,) = _queue(workspace, "cats")
    mine = try_claim(cats, "desk-1", "start", "gpu-01")
    assert mine is not None and try_claim(cats, "desk-2", "start", "gpu-02") is None
    held = read_claim(cats)
    assert (held.desk, held.purpose, held.target) == ("desk-1", "start", "gpu-01")
    release(cats, mine)
    theirs = try_claim(cats, "desk-2", "move")
    release(cats, mine)  # an old claim's holder cannot remove the new one
    assert read_claim(cats).token == theirs.token
    release(cats, theirs)
    (cats / CLAIM_FILE).write_text("", encoding="utf-8")  # its creator died between the create and the write
    assert read_claim(cats).desk == "another desk" and list_queue(workspace)[0].claim is not None
    assert try_claim(cats, "desk-2", "start") is None
    json.loads((cats / QUEUE_FILE).read_text(encoding="utf-8"))  # queue.json untouched by any of it
