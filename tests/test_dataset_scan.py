"""Dataset scans on real folders: every problem found at once, said so a user can act."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

import trainer.dataset_scan as dataset_scan
from trainer.captions import CaptionFormat, Problem
from trainer.dataset_scan import find_images, repeats_for, scan_dataset


def image(path: Path, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 100, 50)).save(path)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def messages(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def find(problems: list[Problem], *words: str) -> Problem:
    matches = [p for p in problems if all(w in str(p) for w in words)]
    assert len(matches) == 1, f"{words} in:\n{messages(problems)}"
    return matches[0]


def test_kohya_repeat_folders_with_csv(tmp_path: Path) -> None:
    image(tmp_path / "root.png")
    image(tmp_path / "10_style" / "a.jpg")
    image(tmp_path / "10_style" / "nested" / "b.png")
    image(tmp_path / "3_char" / "c.webp")
    image(tmp_path / "extra" / "d.bmp")
    image(tmp_path / "0_zero" / "e.png")
    text(
        tmp_path / "metadata.csv",
        "filename,prompt\nroot.png,r\n10_style/a.jpg,a\n10_style/nested/b.png,b\n"
        "3_char/c.webp,c\nextra/d.bmp,d\n0_zero/e.png,e\n",
    )
    scan = scan_dataset(tmp_path)
    assert scan.problems == [], messages(scan.problems)
    assert scan.ok and scan.format is CaptionFormat.CSV
    assert scan.metadata_path == tmp_path / "metadata.csv"
    assert [(i.rel_path, i.repeats, i.caption) for i in scan.items] == [
        ("0_zero/e.png", 1, "e"),
        ("10_style/a.jpg", 10, "a"),
        ("10_style/nested/b.png", 10, "b"),
        ("3_char/c.webp", 3, "c"),
        ("extra/d.bmp", 1, "d"),
        ("root.png", 1, "r"),
    ]
    assert all(i.image_path.is_absolute() and i.image_path.is_file() for i in scan.items)
    assert scan.image_count == 6 and scan.total_repeats == 1 + 10 + 10 + 3 + 1 + 1
    assert "6 images" in scan.summary() and "0 errors" in scan.summary()


def test_repeats_for() -> None:
    assert repeats_for("10_style/a.png") == 10
    assert repeats_for("10_style/x/a.png") == 10
    assert repeats_for("10_style.png") == 1
    assert repeats_for("style/10_x/a.png") == 1
    assert repeats_for("0_x/a.png") == 1


def test_hidden_and_cache_entries_are_skipped(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork
    image(tmp_path / ".thumbs" / "t.png")
    image(tmp_path / "_cache" / "c.png")
    image(tmp_path / "__pycache__" / "p.png")
    (tmp_path / "folder.png").mkdir()
    text(tmp_path / "notes.md", "not an image")
    assert find_images(tmp_path) == [tmp_path / "a.png"]


def test_every_problem_is_collected(tmp_path: Path) -> None:
    image(tmp_path / "good.png")
    image(tmp_path / "uncaptioned.png")
    image(tmp_path / "10_style" / "empty.jpg")
    truncated = image(tmp_path / "10_style" / "truncated.jpg", (256, 256))
    truncated.write_bytes(truncated.read_bytes()[:300])
    fake = text(tmp_path / "fake.jpg", "this is not a JPEG")
    image(tmp_path / "Mixed.PNG")
    meta = text(
        tmp_path / "metadata.csv",
        "filename,prompt\n"  # 1
        "good.png,fine\n"  # 2
        "10_style/empty.jpg,\n"  # 3
        "10_style/truncated.jpg,t\n"  # 4
        "fake.jpg,f\n"  # 5
        "cat.png,a cat that is not there\n"  # 6
        "../outside.png,nope\n"  # 7
        "good.png,twice\n"  # 8
        "mixed.png,case\n",  # 9
    )
    scan = scan_dataset(tmp_path)
    problems = scan.problems

    row = find(problems, "cat.png", "does not exist")
    assert (row.path, row.line, row.severity) == (str(meta), 6, "error")
    assert "fix the filename or delete the row" in row.hint
    assert str(row).startswith(f"{meta}:6: row names 'cat.png', which does not exist in the dataset folder")
    assert find(problems, "escapes the dataset folder").line == 7
    dup = find(problems, "listed twice")
    assert dup.line == 8 and "line 2" in dup.message
    assert "did you mean 'Mixed.PNG'" in find(problems, "mixed.png", "does not exist").hint

    missing = find(problems, "uncaptioned.png", "has no caption")
    assert missing.path == str(tmp_path / "uncaptioned.png")
    assert "metadata.csv" in missing.hint and "remove the image" in missing.hint
    assert find(problems, "Mixed.PNG", "has no caption").severity == "error"

    empty = find(problems, "empty.jpg", "empty caption")
    assert empty.severity == "warning" and "line 3" in empty.message

    assert "truncated" in find(problems, "truncated.jpg", "truncated or damaged").message
    assert find(problems, str(fake), "not an image").path == str(fake)

    assert len(scan.errors) == 8 and len(scan.warnings) == 1, messages(problems)
    assert not scan.ok
    # The caption file's problems come in line order.
    csv_lines = [p.line for p in problems if p.path == str(meta)]
    assert csv_lines == sorted(csv_lines)


def test_bomb_image_and_pixel_limit_option(tmp_path: Path) -> None:
    image(tmp_path / "big.png", (100, 100))
    text(tmp_path / "big.txt", "big")
    scan = scan_dataset(tmp_path, max_image_pixels=5000)
    bomb = find(scan.problems, "big.png", "decompression bomb")
    assert "100x100 = 10,000 pixels" in bomb.message and "5,000" in bomb.message
    assert "max_image_pixels" in bomb.hint
    assert scan_dataset(tmp_path, max_image_pixels=10_000).problems == []


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    missing = scan_dataset(tmp_path / "nope")
    [problem] = missing.problems
    assert problem.path == str(tmp_path / "nope") and "does not exist" in problem.message
    assert "train_data_dir" in problem.hint

    (tmp_path / "empty" / "_cache").mkdir(parents=True)
    image(tmp_path / "empty" / "_cache" / "skipped.png")
    [problem] = scan_dataset(tmp_path / "empty").problems
    assert "contains no images" in problem.message
    for ext in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
        assert ext in problem.message
    assert "10_style" in problem.hint


def test_given_metadata_file_missing_is_one_problem(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        image(tmp_path / name)
    scan = scan_dataset(tmp_path, metadata_path=tmp_path / "labels.csv")
    [problem] = scan.problems  # not also one "has no caption" per image
    assert problem.path == str(tmp_path / "labels.csv") and "does not exist" in problem.message
    assert scan.image_count == 3 and scan.format is CaptionFormat.CSV


def test_unreadable_csv_is_one_problem_not_one_per_image(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        image(tmp_path / name)
    text(tmp_path / "metadata.csv", "image_path,description\na.png,x\n")
    [problem] = scan_dataset(tmp_path, check_images=False).problems
    assert problem.line == 1 and "found 'image_path', 'description'" in problem.message


def test_metadata_outside_folder_names_files_relative_to_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    image(data / "img_001.jpg")
    meta = text(tmp_path / "labels" / "captions.jsonl", '{"file_name": "img_001.jpg", "text": "hi"}\n')
    scan = scan_dataset(data, metadata_path=meta)
    assert scan.problems == [] and scan.format is CaptionFormat.JSONL
    assert scan.items[0].caption == "hi"


def test_hf_imagefolder_jsonl(tmp_path: Path) -> None:
    image(tmp_path / "train" / "0001.png")
    image(tmp_path / "train" / "0002.png")
    text(
        tmp_path / "metadata.jsonl",
        '{"file_name": "train/0001.png", "text": "one"}\n{"file_name": "train/0003.png", "text": "x"}\n',
    )
    scan = scan_dataset(tmp_path)
    assert find(scan.problems, "train/0003.png", "does not exist").line == 2
    assert find(scan.problems, "0002.png", "has no caption").severity == "error"


def test_txt_sidecars_scan(tmp_path: Path) -> None:
    image(tmp_path / "5_dog" / "a.png")
    image(tmp_path / "5_dog" / "b.png")
    image(tmp_path / "5_dog" / "c.png")
    text(tmp_path / "5_dog" / "a.txt", "a dog")
    text(tmp_path / "5_dog" / "b.txt", "   ")
    text(tmp_path / "5_dog" / "renamed.txt", "orphan")
    scan = scan_dataset(tmp_path)
    assert scan.format is CaptionFormat.TXT and scan.metadata_path is None
    assert [i.caption for i in scan.items] == ["a dog", "", None]
    assert scan.total_repeats == 15
    missing = find(scan.problems, "c.png", "has no caption")
    assert "c.txt" in missing.hint
    assert find(scan.problems, "b.png", "empty caption").severity == "warning"
    assert find(scan.problems, "renamed.txt", "no image").severity == "warning"
    assert len(scan.problems) == 3, messages(scan.problems)


def test_both_metadata_files_warns(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    text(tmp_path / "metadata.csv", "filename,prompt\na.png,x\n")
    text(tmp_path / "metadata.jsonl", "")
    [problem] = scan_dataset(tmp_path).problems
    assert problem.severity == "warning" and "using metadata.csv" in problem.message


def test_ten_thousand_images_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("check_images=False must not decode images")

    monkeypatch.setattr(dataset_scan, "check_full_decode", no_decoding)
    rows = ["filename,prompt"]
    for folder in ("10_a", "5_b"):
        (tmp_path / folder).mkdir()
        for index in range(5000):
            name = f"{folder}/img_{index:05d}.jpg"
            (tmp_path / name).write_bytes(b"")  # never opened: empty files are fine
            rows.append(f"{name},caption number {index}, with a comma")
    text(tmp_path / "metadata.csv", "\n".join(rows) + "\n")
    started = time.perf_counter()
    scan = scan_dataset(tmp_path, check_images=False)
    elapsed = time.perf_counter() - started
    assert scan.image_count == 10_000 and scan.total_repeats == 75_000
    # Each row's unquoted comma is one warning; nothing else.
    assert len(scan.problems) == 10_000 and not scan.errors
    assert elapsed < 5.0, f"scan of 10,000 images took {elapsed:.2f}s"


def test_unusable_options_are_problems_not_exceptions(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    [problem] = scan_dataset(tmp_path, metadata_path=tmp_path / "captions.txt").problems
    assert ".csv or .jsonl" in problem.message
    [problem] = scan_dataset(tmp_path, caption_extension=".png").problems
    assert "caption_extension" in problem.message
