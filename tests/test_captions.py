"""Caption files read as the trainer and the app read them: the three formats, with the messages users see.

Writing and editing them: test_caption_writing.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.caption_helpers import read_csv, touch_images, write
from trainer.captions import (
    CaptionFormat,
    Problem,
    default_metadata_path,
    detect_format,
    load_captions,
    read_captions,
    safe_relative_path,
)

REPO = Path(__file__).resolve().parents[1]


# -------------------------------------------------------------------------------------
# Problem and paths


def test_problem_str_names_file_line_and_hint() -> None:
    with_line = Problem("/d/metadata.csv", 3, "row names 'x.png'", "fix it")
    assert str(with_line) == "/d/metadata.csv:3: row names 'x.png' — fix it"
    assert str(Problem("/d/a.png", None, "is broken", "remove it")) == "/d/a.png: is broken — remove it"
    assert with_line.severity == "error"


@pytest.mark.parametrize(
    "name, expected",
    [("a.png", "a.png"), ("./a.png", "a.png"), ("10_s\\a.png", "10_s/a.png"), ("s/../a.png", "a.png")],
)
def test_safe_relative_path_normalises(name: str, expected: str) -> None:
    assert safe_relative_path(name) == expected


@pytest.mark.parametrize("name", ["../x.png", "a/../../x.png", "/etc/x.png", "C:\\x.png", "\\\\srv\\x.png"])
def test_safe_relative_path_refuses_escapes(name: str) -> None:
    with pytest.raises(ValueError, match="escapes the dataset folder"):
        safe_relative_path(name)


# -------------------------------------------------------------------------------------
# Detection


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(tmp_path) is CaptionFormat.TXT
    write(tmp_path / "metadata.jsonl", "")
    assert detect_format(tmp_path) is CaptionFormat.JSONL
    write(tmp_path / "metadata.csv", "")
    assert detect_format(tmp_path) is CaptionFormat.CSV
    assert detect_format(tmp_path, tmp_path / "other.JSONL") is CaptionFormat.JSONL
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        detect_format(tmp_path, tmp_path / "captions.txt")
    assert default_metadata_path(tmp_path, CaptionFormat.CSV) == tmp_path / "metadata.csv"
    assert default_metadata_path(tmp_path, CaptionFormat.JSONL) == tmp_path / "metadata.jsonl"
    assert default_metadata_path(tmp_path, CaptionFormat.TXT) is None


# -------------------------------------------------------------------------------------
# CSV reading


def test_csv_seed_format(tmp_path: Path) -> None:
    write(
        tmp_path / "metadata.csv",
        "filename,prompt\n"
        "img_001.jpg,a beautiful oil painting in the style of Van Gogh\n"
        "img_002.jpg,ink sketch with delicate linework and shading\n",
    )
    captions, problems = read_csv(tmp_path)
    assert problems == []
    assert captions == {
        "img_001.jpg": "a beautiful oil painting in the style of Van Gogh",
        "img_002.jpg": "ink sketch with delicate linework and shading",
    }


def test_csv_bom_aliases_quotes_and_multiline(tmp_path: Path) -> None:
    text = (
        "\ufeffFile_Name,Caption,rating\r\n"
        '10_style/a.png,"a cat, sitting",5\r\n'
        '"b.png","said ""hi""\r\non two lines",4\r\n'
        "c.png,  padded  ,3\r\n"
        "\r\n"
        ",,\r\n"
    )
    write(tmp_path / "metadata.csv", text)
    captions, problems = read_csv(tmp_path)
    assert problems == []
    assert captions == {
        "10_style/a.png": "a cat, sitting",
        "b.png": 'said "hi"\r\non two lines',
        "c.png": "padded",
    }


def test_csv_semicolon_separated(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", "filename;prompt\na.png;a cat, sitting\n")
    captions, problems = read_csv(tmp_path)
    assert (captions, problems) == ({"a.png": "a cat, sitting"}, [])


def test_csv_reports_every_row_problem_with_its_line(tmp_path: Path) -> None:
    text = (
        "filename,prompt,extra\n"  # 1
        "ok.png,fine,x\n"  # 2
        ",orphan caption,x\n"  # 3
        "../secret.png,nope,x\n"  # 4
        "/etc/passwd.png,nope,x\n"  # 5
        '"multi.png","line one\nline two",x\n'  # 6-7
        "short.png\n"  # 8
        "ok.png,again,x\n"  # 9
    )
    path = write(tmp_path / "metadata.csv", text)
    result = load_captions(tmp_path, CaptionFormat.CSV)
    by_line = {p.line: p for p in result.problems}
    assert set(by_line) == {3, 4, 5, 8, 9}
    assert all(p.path == str(path) for p in result.problems)
    assert "empty filename" in by_line[3].message
    assert "escapes the dataset folder" in by_line[4].message and "../secret.png" in by_line[4].message
    assert "escapes the dataset folder" in by_line[5].message
    assert "1 field" in by_line[8].message and "3 columns" in by_line[8].message
    assert "line 2" in by_line[9].message and "line 9" in by_line[9].message
    assert "listed twice" in by_line[9].message
    assert result.captions == {"ok.png": "fine", "multi.png": "line one\nline two"}
    assert result.lines == {"ok.png": 2, "multi.png": 6}
    assert "short.png" in result.rejected


def test_csv_missing_column_says_found_and_needed(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", "name,description\na.png,cat\n")
    captions, problems = read_csv(tmp_path)
    assert captions == {}
    [problem] = problems
    assert problem.line == 1
    assert "'name', 'description'" in problem.message
    assert "filename" in problem.message and "prompt" in problem.message


def test_csv_without_header_line(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", "img_001.jpg,a painting\nimg_002.jpg,a sketch\n")
    _, [problem] = read_csv(tmp_path)
    assert "no header" in problem.message and "filename,prompt" in problem.hint


def test_csv_unterminated_quote_at_end(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", 'filename,prompt\na.png,ok\nb.png,"never closed\nc.png,x\n')
    result = load_captions(tmp_path, CaptionFormat.CSV)
    [problem] = result.problems
    assert problem.line == 3
    assert "never closed" in problem.message and "lines 3-4" in problem.message
    assert result.captions == {"a.png": "ok"}


def test_csv_missing_quote_swallowing_rows(tmp_path: Path) -> None:
    write(
        tmp_path / "metadata.csv",
        'filename,prompt\na.png,"starts here\nb.png,plain\nc.png,"quoted"\nd.png,after\n',
    )
    result = load_captions(tmp_path, CaptionFormat.CSV)
    [problem] = [p for p in result.problems if p.severity == "error"]
    assert problem.line == 2
    assert "closing double quote" in problem.message and "b.png,plain" in problem.message
    assert result.captions == {"d.png": "after"}


def test_csv_unquoted_commas_are_kept_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", "filename,prompt\na.png,a cat, sitting, on a mat\n")
    captions, [problem] = read_csv(tmp_path)
    assert captions == {"a.png": "a cat, sitting, on a mat"}
    assert problem.severity == "warning" and problem.line == 2
    assert "double quotes" in problem.hint


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", "filename,prompt\na.png,café\n".encode("cp1252"))
    captions, [problem] = read_csv(tmp_path)
    assert captions == {}
    assert problem.path == str(path)
    assert "not valid UTF-8" in problem.message and "UTF-8" in problem.hint


def test_missing_metadata_file(tmp_path: Path) -> None:
    _, [problem] = read_captions(tmp_path, CaptionFormat.CSV, tmp_path / "nope.csv")
    assert problem.path.endswith("nope.csv") and "does not exist" in problem.message


# -------------------------------------------------------------------------------------
# JSONL reading


def test_jsonl_reading_and_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metadata.jsonl",
        '{"file_name": "train/a.png", "text": "a cat", "score": 1}\n'  # 1
        "\n"  # 2
        '{"file_name": "b.png", "text": "line\\u2028sep"}\r\n'  # 3
        "{not json}\n"  # 4
        '{"file_name": "c.png"}\n'  # 5
        '["a list"]\n'  # 6
        '{"file_name": "../x.png", "text": "t"}\n'  # 7
        '{"file_name": "d.png", "text": null}\n'  # 8
        '{"file_name": "a.png", "text": "last, no newline"}',  # 9
    )
    result = load_captions(tmp_path, CaptionFormat.JSONL)
    assert result.captions == {"train/a.png": "a cat", "b.png": "line\u2028sep", "a.png": "last, no newline"}
    by_line = {p.line: p.message for p in result.problems}
    assert set(by_line) == {4, 5, 6, 7, 8}
    assert all(p.path == str(path) for p in result.problems)
    assert "not valid JSON" in by_line[4]
    assert '"text"' in by_line[5]
    assert "not an object" in by_line[6]
    assert "escapes" in by_line[7]
    assert "not a string" in by_line[8]


# -------------------------------------------------------------------------------------
# TXT sidecars


def test_txt_sidecars(tmp_path: Path) -> None:
    touch_images(tmp_path, "a.png", "10_style/b.JPG", "c.webp", "d.png", ".hidden.png")
    write(tmp_path / "a.txt", "\ufeff  a cat \n")
    write(tmp_path / "10_style" / "b.txt", "in a folder")
    write(tmp_path / "c.txt", b"\xff\xfe bad")
    captions, problems = read_captions(tmp_path, CaptionFormat.TXT)
    assert captions == {"a.png": "a cat", "10_style/b.JPG": "in a folder"}
    [problem] = problems
    assert problem.path == str(tmp_path / "c.txt") and "UTF-8" in problem.message


def test_txt_custom_extension_and_shared_sidecar(tmp_path: Path) -> None:
    touch_images(tmp_path, "a.png", "a.jpg")
    write(tmp_path / "a.caption", "shared")
    captions, [problem] = read_captions(tmp_path, CaptionFormat.TXT, caption_extension=".caption")
    assert captions == {"a.jpg": "shared", "a.png": "shared"}
    assert problem.severity == "warning" and "both" in problem.message


# -------------------------------------------------------------------------------------
# Layering


def test_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'numpy', 'diffusers', 'PySide6'):\n"
        "    sys.modules[name] = None  # any import of these now fails\n"
        "import trainer.captions, trainer.images, trainer.dataset_scan\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
