"""Round trips: saving keeps every byte the user did not edit, and the trainer reads the result."""

from __future__ import annotations

import json

import pytest

from app_helpers import make_images, open_folder
from lora_studio.storage.dataset import open_dataset, save_store


def edit_and_save(folder, changes):
    opened = open_dataset(folder)
    captions = dict(zip((e.rel for e in opened.entries), opened.captions))
    captions.update(changes)
    save_store(opened.store, captions)


def test_csv_round_trip_keeps_columns_quoting_and_line_endings(tmp_path):
    make_images(tmp_path, 4)
    original = ('score,filename,prompt,"note, quoted"\r\n'
                '1,img_000.png,"a, b",keep me\r\n'
                '2,img_001.png,untouched   spacing ,"x ""quoted"""\r\n'
                "3,img_002.png,old,\r\n")
    (tmp_path / "metadata.csv").write_bytes(original.encode())
    edit_and_save(tmp_path, {})
    assert (tmp_path / "metadata.csv").read_bytes() == original.encode()  # no edit: identical
    edit_and_save(tmp_path, {"img_002.png": "new, caption", "img_003.png": "added"})
    expected = original.replace("3,img_002.png,old,", '3,img_002.png,"new, caption",') + ",img_003.png,added,\r\n"
    assert (tmp_path / "metadata.csv").read_bytes() == expected.encode()


def test_jsonl_round_trip_keeps_unknown_fields(tmp_path):
    make_images(tmp_path, 2)
    original = ('{"file_name":"img_000.png","text":"a","aesthetic":6.5,"meta":{"src":"x"}}\n'
                '{"text": "b", "file_name": "img_001.png", "weird": null}')
    (tmp_path / "metadata.jsonl").write_text(original)
    edit_and_save(tmp_path, {"img_001.png": "b2"})
    lines = (tmp_path / "metadata.jsonl").read_text().split("\n")
    assert lines[0] == original.split("\n")[0]  # byte-for-byte
    assert json.loads(lines[1]) == {"text": "b2", "file_name": "img_001.png", "weird": None}


def test_txt_round_trip_keeps_bom_and_newline(tmp_path):
    make_images(tmp_path, 3)
    (tmp_path / "img_000.txt").write_bytes(b"\xef\xbb\xbfbom caption\r\n")
    (tmp_path / "img_001.txt").write_bytes(b"plain")
    edit_and_save(tmp_path, {"img_000.png": "edited", "img_002.png": "new"})
    assert (tmp_path / "img_000.txt").read_bytes() == b"\xef\xbb\xbfedited\r\n"
    assert (tmp_path / "img_001.txt").read_bytes() == b"plain"
    assert (tmp_path / "img_002.txt").read_bytes() == b"new"


def test_repeat_folders_are_one_dataset(tmp_path):
    make_images(tmp_path / "10_style", 2)
    make_images(tmp_path / "3_extra", 1)
    (tmp_path / "10_style" / "img_000.txt").write_text("styled")
    opened = open_dataset(tmp_path)
    assert [e.rel for e in opened.entries] == ["10_style/img_000.png", "10_style/img_001.png", "3_extra/img_000.png"]
    assert opened.captions[0] == "styled"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_trainer_reads_what_the_app_writes(tmp_path, fmt):
    captions_mod = pytest.importorskip("trainer.captions")
    from lora_studio.storage.dataset import convert_store
    names = make_images(tmp_path, 3)
    captions = {names[0]: 'a, "quoted", tag', names[1]: "ünïcode, line", names[2]: ""}
    convert_store(tmp_path, fmt, names, captions)
    read, problems = captions_mod.read_captions(tmp_path, captions_mod.CaptionFormat(fmt))
    assert {k: v for k, v in read.items() if v} == {k: v for k, v in captions.items() if v}
    assert not [p for p in problems if getattr(p, "severity", "") == "error"]


def test_convert_in_the_app(qtbot, window, dataset_factory):
    folder = dataset_factory("txt")
    open_folder(qtbot, window, folder)
    with qtbot.waitSignal(window.session.converted, timeout=20_000):
        window.datasets.convert_to("csv")
    assert window.session.format == "csv" and window.status.format_label.text() == "Format: csv"
    assert open_dataset(folder).format == "csv"
    assert open_dataset(folder).captions == open_dataset(folder, "txt").captions
