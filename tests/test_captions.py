"""Caption files: the three formats read, written and converted, with the messages users see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trainer.captions import (
    CaptionFileError,
    CaptionFormat,
    MetadataDocument,
    Problem,
    SidecarSet,
    convert_captions,
    default_metadata_path,
    detect_format,
    load_captions,
    read_captions,
    safe_relative_path,
    write_captions,
)

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def touch_images(folder: Path, *names: str) -> None:
    for name in names:
        write(folder / name, b"not decoded by caption tests")


def read_csv(folder: Path) -> tuple[dict[str, str], list[Problem]]:
    return read_captions(folder, CaptionFormat.CSV)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


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
# Writing


CAPTIONS = {
    "b.png": 'quote " and, comma',
    "a.png": "multi\nline",
    "10_style/c.jpg": "unicode ünïcødé 猫",
}


@pytest.mark.parametrize("fmt", list(CaptionFormat))
def test_round_trip_every_format(tmp_path: Path, fmt: CaptionFormat) -> None:
    touch_images(tmp_path, *CAPTIONS)
    write_captions(tmp_path, CAPTIONS, fmt)
    captions, problems = read_captions(tmp_path, fmt)
    assert problems == []
    assert captions == CAPTIONS
    assert no_temp_files(tmp_path)


def test_new_csv_has_seed_header_no_bom_sorted_rows(tmp_path: Path) -> None:
    write_captions(tmp_path, {"b.png": "bee", "a.png": "a, comma"}, CaptionFormat.CSV)
    data = (tmp_path / "metadata.csv").read_bytes()
    assert data == b'filename,prompt\na.png,"a, comma"\nb.png,bee\n'


def test_csv_write_keeps_order_extra_columns_header_bom_and_unchanged_bytes(tmp_path: Path) -> None:
    original = (
        "\ufeffImage,Text,rating\r\n"
        'z.png,"zed",5\r\n'  # unchanged: kept byte for byte (quotes included)
        "m.png,old caption,4\r\n"  # changed
        "gone.png,deleted,3\r\n"  # no longer in the captions: dropped
        "../evil.png,kept verbatim,2\r\n"  # could not be read: kept as is
        "m.png,duplicate,1\r\n"  # later duplicate: dropped
        "a.png,apple,0"  # last line without a line ending
    )
    path = write(tmp_path / "metadata.csv", original)
    write_captions(
        tmp_path,
        {"z.png": "zed", "m.png": "new, caption", "a.png": "apple", "new2.png": "two", "new1.png": "one"},
        CaptionFormat.CSV,
    )
    assert path.read_bytes().decode("utf-8") == (
        "\ufeffImage,Text,rating\r\n"  # Excel's BOM is kept too
        'z.png,"zed",5\r\n'
        'm.png,"new, caption",4\r\n'
        "../evil.png,kept verbatim,2\r\n"
        "a.png,apple,0\r\n"
        "new1.png,one,\r\n"
        "new2.png,two,\r\n"
    )
    assert no_temp_files(tmp_path)


def test_csv_write_refuses_files_it_cannot_read(tmp_path: Path) -> None:
    broken = "filename,prompt\na.png,\"unclosed\nb.png,x\n"
    path = write(tmp_path / "metadata.csv", broken)
    with pytest.raises(CaptionFileError, match="never closed"):
        write_captions(tmp_path, {"a.png": "x"}, CaptionFormat.CSV)
    assert path.read_text() == broken
    write(tmp_path / "metadata.csv", "filename,prompt\na.png,café\n".encode("cp1252"))
    with pytest.raises(CaptionFileError, match="UTF-8"):
        write_captions(tmp_path, {"a.png": "x"}, CaptionFormat.CSV)


def test_jsonl_write_keeps_keys_order_and_bad_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metadata.jsonl",
        '{"file_name": "b.png", "text": "bee", "score": 2}\n'
        "{broken\n"
        '{"file_name": "a.png", "text": "old", "score": 1}\n'
        '{"file_name": "gone.png", "text": "bye"}\n',
    )
    write_captions(tmp_path, {"a.png": "new", "b.png": "bee", "c.png": "sea"}, CaptionFormat.JSONL)
    lines = path.read_text("utf-8").splitlines()
    assert lines[0] == '{"file_name": "b.png", "text": "bee", "score": 2}'
    assert lines[1] == "{broken"
    assert json.loads(lines[2]) == {"file_name": "a.png", "text": "new", "score": 1}
    assert json.loads(lines[3]) == {"file_name": "c.png", "text": "sea"}
    assert len(lines) == 4


def test_txt_write_only_changed_sidecars(tmp_path: Path) -> None:
    touch_images(tmp_path, "a.png", "b.png", "c.png")
    write(tmp_path / "a.txt", "same\n")
    write(tmp_path / "c.txt", "not mentioned")
    before = (tmp_path / "a.txt").stat().st_mtime_ns
    write_captions(tmp_path, {"a.png": "same", "b.png": "new"}, CaptionFormat.TXT)
    assert (tmp_path / "a.txt").stat().st_mtime_ns == before
    assert (tmp_path / "a.txt").read_text() == "same\n"
    assert (tmp_path / "b.txt").read_text() == "new"
    assert (tmp_path / "c.txt").read_text() == "not mentioned"  # never deleted
    assert no_temp_files(tmp_path)


def test_write_refuses_keys_outside_the_folder(tmp_path: Path) -> None:
    for fmt in CaptionFormat:
        with pytest.raises(ValueError, match="escapes"):
            write_captions(tmp_path / "ds", {"../x.png": "evil"}, fmt)
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(ValueError, match="caption_extension"):
        write_captions(tmp_path, {"a.png": "x"}, CaptionFormat.TXT, caption_extension=".png")


def test_convert_between_formats(tmp_path: Path) -> None:
    touch_images(tmp_path, "a.png", "s/b.png")
    write(tmp_path / "metadata.csv", 'filename,prompt\na.png,"one, two"\ns/b.png,three\n')
    target = convert_captions(tmp_path, CaptionFormat.CSV, CaptionFormat.JSONL)
    assert target == tmp_path / "metadata.jsonl"
    assert read_captions(tmp_path, CaptionFormat.JSONL) == ({"a.png": "one, two", "s/b.png": "three"}, [])
    assert convert_captions(tmp_path, CaptionFormat.JSONL, CaptionFormat.TXT) is None
    assert (tmp_path / "s" / "b.txt").read_text() == "three"
    write(tmp_path / "metadata.csv", "filename,prompt\n../x.png,bad\n")
    with pytest.raises(CaptionFileError, match="escapes"):
        convert_captions(tmp_path, CaptionFormat.CSV, CaptionFormat.JSONL)


# -------------------------------------------------------------------------------------
# Editing: the documents the app keeps open between saves


UNTOUCHED_CSV = (
    "\ufeff\r\n"  # a BOM and a blank line before the header
    "score;Image;Prompt;note\r\n"
    '1;a.png;"one; two";keep\r\n'
    "\r\n"  # a blank line in the middle
    '2;b.png;"multi\nline";"x ""q"""\r\n'
    "3;gone.png;row for a missing file;\r\n"
    "broken row without separators\r\n"
    "4;c.png;last row, no line ending;z"
)


def test_unedited_document_renders_byte_for_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", UNTOUCHED_CSV)
    doc = MetadataDocument.load(path, CaptionFormat.CSV)
    assert doc.render(doc.captions) == path.read_bytes()
    jsonl = write(tmp_path / "metadata.jsonl",
                  '{"text": "a", "file_name": "a.png", "x": [1, 2.50]}\r\n\n{oops\n{"file_name": "b.png", "text": "b"}')
    doc = MetadataDocument.load(jsonl, CaptionFormat.JSONL)
    assert doc.render(doc.captions) == jsonl.read_bytes()


def test_document_edit_touches_only_the_edited_row(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", UNTOUCHED_CSV)
    doc = MetadataDocument.load(path, CaptionFormat.CSV)
    data = doc.render({**doc.captions, "c.png": "edited", "d.png": "new"}).decode("utf-8")
    assert data == UNTOUCHED_CSV.replace("4;c.png;last row, no line ending;z", "4;c.png;edited;z\r\n") + ";d.png;new;\r\n"
    # The app keeps rows for images it does not show; the one-shot writer drops them.
    assert "gone.png" in data
    assert "gone.png" not in doc.render({"a.png": "one; two"}, keep_unlisted=False).decode()


def test_editor_reads_legacy_encoding_and_saves_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", "filename,prompt\r\na.png,café\r\nb.png,crème\r\n".encode("cp1252"))
    with pytest.raises(CaptionFileError, match="not valid UTF-8"):
        MetadataDocument.load(path, CaptionFormat.CSV).render({"a.png": "x"})
    doc = MetadataDocument.load(path, CaptionFormat.CSV, lenient=True)
    assert doc.captions == {"a.png": "café", "b.png": "crème"}
    [warning] = doc.problems
    assert warning.line == 2 and warning.severity == "warning" and "read as cp1252" in warning.message
    assert doc.render({"a.png": "café", "b.png": "crème"}) == "filename,prompt\r\na.png,café\r\nb.png,crème\r\n".encode()


def test_sidecar_rewrite_keeps_bom_and_line_ending(tmp_path: Path) -> None:
    touch_images(tmp_path, "a.png", "b.png", "c.png")
    write(tmp_path / "a.txt", b"\xef\xbb\xbfold\r\n")
    write(tmp_path / "c.txt", "had one")
    sidecars = SidecarSet.load(tmp_path, ["a.png", "b.png", "c.png"])
    assert sidecars.captions == {"a.png": "old", "c.png": "had one"}
    written = sidecars.save({"a.png": "new", "b.png": "", "c.png": ""})
    assert written == ["a.png", "c.png"]
    assert (tmp_path / "a.txt").read_bytes() == b"\xef\xbb\xbfnew\r\n"
    assert not (tmp_path / "b.txt").exists()  # an empty caption creates no file
    assert (tmp_path / "c.txt").read_bytes() == b""  # but clears one that had a caption
    assert sidecars.save({"a.png": "new ", "b.png": "", "c.png": ""}) == []  # nothing changed


CAPTION_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


# derandomize: CI runs the same examples every time (4,000 random ones passed when this was written).
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(captions=["0\r0"], fmt=CaptionFormat.CSV)  # found by this test: a lone CR was written unquoted
@example(captions=['say "hi"; a,b\r\nnext\tline \u2028 ünï'], fmt=CaptionFormat.CSV)
@given(captions=st.lists(CAPTION_TEXT, min_size=1, max_size=5), fmt=st.sampled_from(list(CaptionFormat)))
def test_what_is_written_reads_back(tmp_path_factory: pytest.TempPathFactory, captions: list[str],
                                    fmt: CaptionFormat) -> None:
    folder = tmp_path_factory.mktemp("prop")
    names = [f"img_{i}.png" for i in range(len(captions))]
    touch_images(folder, *names)
    wanted = {name: caption.strip() for name, caption in zip(names, captions)}
    write_captions(folder, wanted, fmt)
    read, problems = read_captions(folder, fmt)
    assert not [p for p in problems if p.is_error]
    # Separators, quotes, line breaks and any Unicode survive; only an empty caption
    # may have no row (or no file) at all.
    assert {k: v for k, v in read.items() if v} == {k: v for k, v in wanted.items() if v}


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
