"""Caption files written, converted and edited: what the app saves keeps what it did not touch, and reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.caption_helpers import no_temp_files, touch_images, write
from trainer.captions import (
    CaptionFileError,
    CaptionFormat,
    MetadataDocument,
    SidecarSet,
    convert_captions,
    read_captions,
    write_captions,
)



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
