"""Render the app icon (resources/icons/app.svg) to PNG, ICO and ICNS for installers.

Run after changing app.svg and commit the outputs::

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/make_icons.py

Outputs (resources/app-icons/): ``hicolor/<N>x<N>/apps/lora-studio.png`` for the freedesktop
icon theme, ``lora-studio.ico`` (Windows: exe and installer) and ``lora-studio.icns``
(macOS .app). Qt renders the SVG because it already ships with the app; Pillow writes
ICO/ICNS because Qt cannot. Rendering each size from the SVG (not scaling one PNG
down) keeps the small sizes sharp.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icons" / "app.svg"
OUT = ROOT / "resources" / "app-icons"
NAME = "lora-studio"
HICOLOR_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an ICO holds
ICNS_SIZES = (16, 32, 64, 128, 256, 512)


def render_png(svg: Path, size: int) -> bytes:
    """The SVG rendered to a ``size`` x ``size`` PNG with a transparent background."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def make_icons(svg: Path = SVG, out: Path = OUT) -> list[Path]:
    """Write every icon file; returns the paths written."""
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # QImage/QPainter need one
    images = {size: Image.open(io.BytesIO(render_png(svg, size))).convert("RGBA")
              for size in sorted(set(HICOLOR_SIZES + ICO_SIZES + ICNS_SIZES + (1024,)))}
    written: list[Path] = []
    for size in HICOLOR_SIZES:
        path = out / "hicolor" / f"{size}x{size}" / "apps" / f"{NAME}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        images[size].save(path, optimize=True)
        written.append(path)
    scalable = out / "hicolor" / "scalable" / "apps" / f"{NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    scalable.write_bytes(svg.read_bytes())
    written.append(scalable)
    ico = out / f"{NAME}.ico"
    # Pillow's ICO writer takes the largest image and each listed size drawn from the renders.
    images[256].save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != 256])
    written.append(ico)
    icns = out / f"{NAME}.icns"
    # Pillow's ICNS writer picks the embedded sizes itself; it takes extra renders via append_images.
    images[1024].save(icns, format="ICNS", append_images=[images[s] for s in ICNS_SIZES])
    written.append(icns)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svg", type=Path, default=SVG)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for path in make_icons(args.svg, args.output):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
