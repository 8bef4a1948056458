"""Open dataset images safely and uniformly as RGB (torch-free: PIL and the standard library).

Every failure becomes an :class:`ImageProblem` with a message and a hint instead of one of
Pillow's many exception types. The decompression-bomb limit is a parameter checked from
the file header before any pixel is decoded; Pillow's global ``MAX_IMAGE_PIXELS`` is never
changed, because thumbnails and data loading run in several threads at once.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import IO

from PIL import Image, ImageFile, ImageOps

from trainer.problems import ExplainedError, Problem

DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # Pillow's own default bomb limit.

_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # Rotations by 90/270 degrees.
# What a plugin raises when a file is not in its format (Image.open's own list).
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, struct.error)
# What decoding a damaged file raises.
_DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, IndexError, struct.error, zlib.error)
_FIX_HINT = "re-export or re-download the image, or remove it from the dataset"


class ImageProblem(ExplainedError):
    """An image that cannot be used, with what went wrong and what to do."""

    def __init__(self, path: Path | str, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.path = str(path)

    def __str__(self) -> str:
        return str(self.to_problem())  # "path: message — hint", as the dataset scan reports it

    def to_problem(self) -> Problem:
        """The same, as a dataset :class:`~trainer.problems.Problem`."""
        return Problem(self.path, None, self.message, self.hint)


def _identify(fp: IO[bytes], filename: str) -> ImageFile.ImageFile | None:
    """Open the header with the first plugin that accepts it, like ``Image.open``.

    ``Image.open`` would also run Pillow's global bomb check, which refuses images above
    twice ``Image.MAX_IMAGE_PIXELS`` even when the caller allowed more; our own limit is
    checked by the caller instead.
    """
    prefix = fp.read(16)
    tried: set[str] = set()
    # Common formats first (preinit), then every plugin (init): Image.open's order.
    for load_plugins in (Image.preinit, Image.init):
        load_plugins()
        for fmt in list(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            verdict = accept(prefix) if accept else True
            if not verdict or isinstance(verdict, str):  # A str is a "close, but no" note.
                continue
            fp.seek(0)
            try:
                return factory(fp, filename)
            except _NOT_THIS_FORMAT:
                continue
    return None


def _open_header(fp: IO[bytes], path: Path) -> ImageFile.ImageFile:
    try:
        image = _identify(fp, str(path))
    except Image.DecompressionBombError as exc:  # A plugin's own check (e.g. ICO, MPO).
        raise _bomb(path, None, None, str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageProblem(path, f"is truncated or damaged ({exc})", _FIX_HINT) from exc
    if image is None:
        raise ImageProblem(
            path,
            "is not an image that can be read (JPEG, PNG, WebP, BMP or TIFF expected)",
            "convert it to PNG or JPEG, or remove it from the dataset",
        )
    return image


def _open_file(path: Path) -> IO[bytes]:
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by the caller's with-block
    except FileNotFoundError as exc:
        raise ImageProblem(path, "does not exist", "check the path or rescan the dataset") from exc
    except IsADirectoryError as exc:
        raise ImageProblem(path, "is a folder, not an image", "rename the folder") from exc
    except OSError as exc:
        raise ImageProblem(
            path, f"cannot be opened: {exc.strerror or exc}", "check that the file is readable"
        ) from exc
    if _file_size(fp) == 0:
        fp.close()
        raise ImageProblem(path, "is an empty file (0 bytes)", _FIX_HINT)
    return fp


def _file_size(fp: IO[bytes]) -> int:
    fp.seek(0, 2)
    size = fp.tell()
    fp.seek(0)
    return size


def _bomb(path: Path, size: tuple[int, int] | None, limit: int | None, detail: str = "") -> ImageProblem:
    if size is not None and limit is not None:
        message = (
            f"is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
            f"{limit:,} pixels that guards against decompression bombs"
        )
    else:
        message = f"is too large to decode safely (decompression bomb guard: {detail})"
    hint = (
        "if the image is genuine, shrink it, or raise the option `max_image_pixels` "
        "above its pixel count"
    )
    return ImageProblem(path, message, hint)


def _check_limit(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise _bomb(path, size, max_pixels)


def open_rgb(
    path: Path | str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, min_side: int | None = None
) -> Image.Image:
    """Load an image fully, upright (EXIF orientation applied) and in RGB mode.

    Transparency is composited on white; CMYK, palette, grey and 16-bit/float images are
    converted (16-bit scaled to 8-bit, not clipped). ``max_pixels=None`` disables the
    bomb limit. Raises :class:`ImageProblem` for a missing, unreadable, truncated or
    oversized file.

    ``min_side`` is for callers that shrink the image anyway (the captioners): a JPEG is
    then decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself, several times faster, as long
    as both sides stay at least ``min_side`` pixels. Other formats are decoded in full.
    """
    path = Path(path)
    with _open_file(path) as fp:
        image = _open_header(fp, path)
        _check_limit(path, image.size, max_pixels)
        if min_side and image.format == "JPEG":
            # draft() picks the largest reduction that keeps both sides >= the size asked.
            image.draft("RGB", (min_side, min_side))
        try:
            image.load()
        except Image.DecompressionBombError as exc:
            raise _bomb(path, None, None, str(exc)) from exc
        except MemoryError as exc:
            raise ImageProblem(
                path, f"is too large ({image.size[0]}x{image.size[1]}) to decode in the memory available",
                "shrink the image, or lower the option `max_image_pixels` to skip such files",
            ) from exc
        except _DECODE_ERRORS as exc:
            raise ImageProblem(path, f"is truncated or damaged ({exc})", _FIX_HINT) from exc
        image = _upright(image)
        try:
            return _to_rgb(image)
        except (ValueError, OSError) as exc:
            raise ImageProblem(
                path, f"uses the color mode {image.mode}, which cannot be converted to RGB",
                "save it as an ordinary RGB PNG or JPEG",
            ) from exc


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a corrupt EXIF block must not make a good image unusable."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF parsing raises many types; orientation is a nicety
        return image.copy()  # A copy: the caller closes the file behind `image`.


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I;16"):
        # convert("L") would clip everything above 255 to white; scale the 16-bit range.
        return image.convert("I").point(lambda v: v / 257).convert("L").convert("RGB")
    if mode in ("I", "F"):
        return _scale_wide(image).convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in image.info:
        return _on_white(image)
    return image.convert("RGB")


def _scale_wide(image: Image.Image) -> Image.Image:
    """32-bit int or float to 8-bit grey: 16-bit range for ints, 0-1 for floats, else min-max."""
    low, high = image.getextrema()
    if image.mode == "I" and low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    elif high > low:
        scale, offset = 255.0 / (high - low), -low * 255.0 / (high - low)
    else:
        scale, offset = 0.0, 0.0
    return image.convert("F").point(lambda v: v * scale + offset).convert("L")


def _on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def image_size(path: Path | str) -> tuple[int, int]:
    """Width and height as the image will be used (EXIF rotation applied), from the header only.

    Raises :class:`ImageProblem` when the file is not a readable image.
    """
    path = Path(path)
    with _open_file(path) as fp:
        image = _open_header(fp, path)
        width, height = image.size
        if _orientation(image) in _SWAPPING_ORIENTATIONS:
            return height, width
        return width, height


def _orientation(image: Image.Image) -> int:
    # A PNG's EXIF may follow the pixel data; reading it would decode the image, so only
    # an EXIF chunk seen in the header counts (the usual place, and the cheap one).
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a corrupt EXIF block means "no rotation"
        return 1


def check_full_decode(path: Path | str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Problem | None:
    """Decode the whole image (so truncation is caught); return its problem or ``None``."""
    try:
        open_rgb(path, max_pixels)
    except ImageProblem as exc:
        return exc.to_problem()
    return None
