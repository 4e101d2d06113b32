"""A tiny line-plot writer on Pillow (no matplotlib in the project's dependencies)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (90, 90, 90)]


def line_plot(series: dict[str, list[tuple[float, float]]], path: Path, title: str, xlabel: str,
              ylabel: str, size: tuple[int, int] = (900, 540)) -> None:
    """Draw each named series of (x, y) points; dashed-free, legend top-left."""
    w, h = size
    left, right, top, bottom = 70, 20, 40, 50
    points = [p for pts in series.values() for p in pts]
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = (y1 - y0) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    sx = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
    sy = lambda y: h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)  # noqa: E731
    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for i in range(6):
        yv = y0 + (y1 - y0) * i / 5
        xv = x0 + (x1 - x0) * i / 5
        d.line([left - 4, sy(yv), left, sy(yv)], fill=(0, 0, 0))
        d.text((5, sy(yv) - 6), f"{yv:.2f}", fill=(0, 0, 0))
        d.line([sx(xv), h - bottom, sx(xv), h - bottom + 4], fill=(0, 0, 0))
        d.text((sx(xv) - 15, h - bottom + 8), f"{xv:.0f}", fill=(0, 0, 0))
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) > 1:
            d.line([(sx(x), sy(y)) for x, y in pts], fill=colour, width=2)
        for x, y in pts:
            d.ellipse([sx(x) - 2, sy(y) - 2, sx(x) + 2, sy(y) + 2], fill=colour)
        d.text((left + 10, top + 8 + 14 * i), name, fill=colour)
    d.text((left, 12), title, fill=(0, 0, 0))
    d.text((w // 2 - 40, h - 20), xlabel, fill=(0, 0, 0))
    d.text((5, 22), ylabel, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
