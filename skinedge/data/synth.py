"""Procedural dermoscopy-like images with the exact lesion mask of each.

No real dataset can be fetched, so this generator stands in for one: it feeds
the demo's U-Net and SR-GAN, the tests, and INT8 calibration.

Model of one picture, in normalised coordinates (x, y in [0, 1), so every size
shows the same scene), composited back to front:

1. skin: a tone from very light to dark brown with a warm/pink cast, blotchy
   fractal colour variation, redness, pores and faint crease lines;
2. lesion: an opacity field ``alpha`` from a perturbed polar radius
   r(theta) = R (1 + sum_k a_k cos(k theta + phi_k)), stretched, rotated, with
   1-3 merged lobes and a soft rim.  Its colour mixes per-lesion pigments
   (light/dark brown, black, blue-grey, regression white, pink) in blotches and
   toward the centre, over a pigment network (walls of warped Voronoi cells,
   fading toward the rim), with dots/globules; it is laid over the skin with
   weight ``alpha * contrast``;
3. hairs: dark quadratic Bezier curves, anti-aliased on a 2x canvas;
4. uneven illumination (gradient and off-centre fall-off), then gel bubbles
   and specular highlights;
5. the dermatoscope's circular vignette: black outside a soft circle;
6. slight blur and sensor noise.

mask = (alpha >= 0.5) & (vignette visibility >= 0.5); hairs and bubbles never
change it, as in ISIC ground truth.  All randomness comes from
``default_rng(SeedSequence([seed, index]))``; scene parameters are drawn the
same way at every size, so a (seed, index) shows the same scene at 64 and 512
px (only sensor noise, and in rare edge cases the redraw check, differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["GENERATOR_VERSION", "SynthSample", "render_sample"]

GENERATOR_VERSION: int = 1

_MIN_SIZE, _MAX_SIZE = 32, 4096
_TONES = np.array([[244, 208, 192], [228, 180, 156], [204, 146, 114],
                   [166, 110, 78], [104, 66, 46]], np.float32)
_BASE_PIGMENTS = (("light_brown", 0.42), ("dark_brown", 0.40), ("black", 0.05),
                  ("pink_red", 0.08), ("blue_grey", 0.05))
_EXTRA_PIGMENTS = (("light_brown", 0.25), ("dark_brown", 0.35), ("black", 0.15),
                   ("blue_grey", 0.12), ("regression", 0.13))
_PIGMENTS = {  # name: (multiplier of the skin tone, added RGB)
    "light_brown": ((0.78, 0.60, 0.47), (0, 0, 0)), "dark_brown": ((0.46, 0.31, 0.23), (0, 0, 0)),
    "black": ((0.08, 0.08, 0.08), (38, 28, 28)), "blue_grey": ((0.2, 0.22, 0.26), (67, 71, 79)),
    "regression": ((0.5, 0.5, 0.5), (114, 106, 107)), "pink_red": ((0.92, 0.58, 0.6), (0, 0, 0)),
}
_HAIR_P = np.array([12.0] + [4.0] * 5 + [1.5] * 5 + [0.6] * 5)
_HAIR_P /= _HAIR_P.sum()

Rng = np.random.Generator


@dataclass(frozen=True)
class SynthSample:
    """One generated picture, its lesion mask and JSON-ready facts about it."""

    image: np.ndarray  # (size, size, 3) uint8 RGB
    mask: np.ndarray  # (size, size) bool, True = lesion
    info: dict


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Soft 0->1 ramp between e0 and e1 (either order), for soft edges."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Resize a float grid to size x size with PIL bicubic (smooth, fast, anti-aliased)."""
    img = Image.fromarray(grid.astype(np.float32))
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC))


def _fractal(rng: Rng, size: int, base: int, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Value noise summed over octaves: blotches at several scales, mean ~0, std ~1."""
    total = np.zeros((size, size), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        g = base * 2 ** o
        total += amp * _upsample(rng.standard_normal((g, g)), size)
        norm += amp * amp
        amp *= gain
    return total / np.float32(np.sqrt(norm))


def _supersampled(size: int, draw_fn: Callable[[ImageDraw.ImageDraw, float], None]) -> np.ndarray:
    """Run draw_fn(draw, scale) on a 2x 'L' canvas and box-downsample: anti-aliased opacity."""
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    draw_fn(ImageDraw.Draw(canvas), 2.0 * size)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _skin(rng: Rng, size: int) -> tuple[np.ndarray, list[int]]:
    """Skin colour field: tone, pink cast, blotches, redness, pores and crease lines."""
    t = rng.beta(1.3, 2.0) * (len(_TONES) - 1)
    i = min(int(t), len(_TONES) - 2)
    tone = _TONES[i] + (t - i) * (_TONES[i + 1] - _TONES[i])
    cast = rng.uniform(-1.0, 1.0)
    tone = tone * np.array([1 + 0.05 * cast, 1 - 0.03 * cast, 1 - 0.02 * cast], np.float32)
    lum = 1.0 + rng.uniform(0.02, 0.05) * _fractal(rng, size, 3, 4)
    red = rng.uniform(0.0, 0.07) * _smoothstep(-0.3, 1.5, _fractal(rng, size, 4, 3))
    pores = _fractal(rng, size, 160, 1)
    grain = 1.0 - rng.uniform(0.06, 0.14) * np.clip(pores - 1.0, 0.0, None) + 0.025 * pores
    crease = _creases(rng, size)
    shade = lum * grain * (1.0 - rng.uniform(0.06, 0.18) * crease)
    rgb = tone[None, None, :] * shade[..., None]
    rgb[..., 0] *= 1.0 + red
    rgb[..., 1:] *= (1.0 - 0.7 * red)[..., None]
    return rgb, [int(round(float(c))) for c in np.clip(tone, 0, 255)]


def _creases(rng: Rng, size: int) -> np.ndarray:
    """Two families of short, faint, wavy skin furrows crossing at an angle."""
    segs = []
    for fam in range(2):
        ang = rng.uniform(0, np.pi) if fam == 0 else segs[0][0] + rng.uniform(0.8, 2.3)
        for _ in range(22):
            a = ang + rng.normal(0, 0.1)
            mid, length = rng.uniform(-0.1, 1.1, 2), rng.uniform(0.15, 0.5)
            segs.append((a, mid, length, rng.normal(0, 0.01, 7)))

    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        for a, mid, length, wob in segs:
            ts = np.linspace(-0.5, 0.5, 7) * length
            px = mid[0] + ts * np.cos(a) - wob * np.sin(a)
            py = mid[1] + ts * np.sin(a) + wob * np.cos(a)
            d.line(list(zip(s * px, s * py)), fill=100, width=max(1, int(s / 300)), joint="curve")
    return _supersampled(size, draw)


def _radius_table(rng: Rng, n: int = 720) -> np.ndarray:
    """r(theta)/R on n angles: decaying random harmonics plus fine ripple."""
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    irreg = rng.uniform(0.05, 0.28)
    r = np.ones(n)
    for k in range(2, 24):
        amp = irreg * k ** -1.5 * rng.normal() if k < 10 else 0.003 * rng.normal()
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.clip(r, 0.45, None).astype(np.float32)


def _lobe_geometry(rng: Rng) -> dict:
    """Draw centre, size, stretch, rotation and lobes of one lesion (no pixels yet)."""
    area = float(np.exp(rng.uniform(np.log(0.025), np.log(0.5))))
    if rng.random() < 0.2:
        area *= rng.uniform(1.0, 1.6)
    radius = float(np.sqrt(area / np.pi))
    if rng.random() < 0.12:  # shifted off-centre: often crosses the image border
        side = rng.uniform(0, 2 * np.pi)
        reach = 0.5 - radius * rng.uniform(0.1, 0.8)
        centre = 0.5 + reach * np.array([np.cos(side), np.sin(side)])
    else:
        centre = 0.5 + rng.normal(0, 0.06, 2)
    n_lobes = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
    lobes = [(centre, radius, _radius_table(rng))]
    for _ in range(n_lobes - 1):
        a = rng.uniform(0, 2 * np.pi)
        off = radius * rng.uniform(0.4, 0.8) * np.array([np.cos(a), np.sin(a)])
        lobes.append((centre + off, radius * rng.uniform(0.45, 0.75), _radius_table(rng)))
    return {"lobes": lobes, "stretch": float(rng.uniform(1.0, 1.7)),
            "rot": float(rng.uniform(0, np.pi)), "edge": float(rng.uniform(0.03, 0.25) ** 1.3),
            "radius": radius}


def _lesion_field(geo: dict, noise: np.ndarray, x: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Opacity alpha (0.5 on the border) and relative depth (0 centre, 1 rim) of the lesion."""
    cos, sin, e = np.cos(geo["rot"]), np.sin(geo["rot"]), np.sqrt(geo["stretch"])
    dist = depth = None
    for (cx, cy), rad, table in geo["lobes"]:  # rotate, stretch (area-preserving), go polar
        u, v = ((x - cx) * cos + (y - cy) * sin) / e, (-(x - cx) * sin + (y - cy) * cos) * e
        rho = np.hypot(u, v)
        edge_r = rad * table[_angle_index(np.arctan2(v, u), len(table))]
        d, rel = rho - edge_r, rho / edge_r
        dist = d if dist is None else np.minimum(dist, d)  # union of lobes
        depth = rel if depth is None else np.minimum(depth, rel)
    r0 = geo["radius"]
    width = r0 * geo["edge"] + 0.002
    alpha = _smoothstep(width, -width, dist + 0.07 * r0 * noise)
    return alpha, np.clip(depth + 0.05 * noise, 0.0, None)


def _angle_index(theta: np.ndarray, n: int) -> np.ndarray:
    """Index into an n-entry r(theta) table for angles from arctan2 (any branch)."""
    return ((theta + np.pi) * (n / (2 * np.pi))).astype(np.int32) % n


def _vignette(rng: Rng, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Visibility of the dermatoscope's circular field of view (None when absent)."""
    if rng.random() >= 0.5:
        return None
    cx, cy = 0.5 + rng.normal(0, 0.05, 2)
    r, w = rng.uniform(0.45, 0.68), rng.uniform(0.006, 0.03)
    return _smoothstep(r + w, r - w, np.hypot(x - cx, y - cy))


def _pigment(name: str, skin: np.ndarray) -> np.ndarray:
    """RGB of a named pigment: a filter on the mean skin tone plus a fixed colour."""
    mul, add = _PIGMENTS[name]
    return (skin * np.array(mul) + np.array(add)).astype(np.float32)


def _lesion_colour(rng: Rng, size: int, base: str, skin_mean: np.ndarray, depth: np.ndarray,
                   net: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """Variegated lesion colour: base pigment, its network, then blotches that partly hide it."""
    col = np.broadcast_to(_pigment(base, skin_mean), (size, size, 3)).copy()
    if net is not None:
        col *= (1.0 - net)[..., None]
    central = 1.0 - np.clip(depth, 0.0, 1.0)
    extras = [(n, p) for n, p in _EXTRA_PIGMENTS if n != base]
    weights = np.array([p for _, p in extras])
    n_extra = int(rng.choice([0, 1, 2, 3], p=[0.2, 0.4, 0.28, 0.12]))
    picks = rng.choice(len(extras), size=n_extra, replace=False, p=weights / weights.sum())
    chosen = [extras[int(i)][0] for i in picks]
    for name in chosen:
        dark = name in ("dark_brown", "black", "blue_grey")
        pull = rng.uniform(0.3, 1.0) if dark else rng.uniform(-0.6, 0.1)
        field = pull * central + 0.35 * _fractal(rng, size, int(rng.integers(3, 7)), 3)
        thr = rng.uniform(0.15, 0.5) * max(pull, 0.0) + rng.uniform(0.15, 0.45)
        strength = rng.uniform(0.6, 1.0) * (0.7 if name == "regression" else 1.0)
        w = _smoothstep(thr - 0.12, thr + 0.12, field) * strength
        col += w[..., None] * (_pigment(name, skin_mean) - col)
    col *= (1.0 + 0.07 * _fractal(rng, size, 12, 3))[..., None]
    return col, [base] + chosen


def _cell_walls(rng: Rng, gx: np.ndarray, gy: np.ndarray, m: int) -> np.ndarray:
    """Worley F2 - F1 on a jittered grid (coordinates in cell units): ~0 on the cell walls."""
    jit = rng.uniform(0.15, 0.85, (2, m, m)).astype(np.float32)
    ix, iy = np.floor(gx).astype(np.int32), np.floor(gy).astype(np.int32)
    fx, fy = gx - ix, gy - iy
    f1 = np.full(gx.shape, np.inf, np.float32)
    f2 = f1.copy()
    for dy in (-1, 0, 1):
        jy = np.clip(iy + (dy + 3), 0, m - 1)
        for dx in (-1, 0, 1):
            jx = np.clip(ix + (dx + 3), 0, m - 1)
            d = (dx + jit[0, jy, jx] - fx) ** 2 + (dy + jit[1, jy, jx] - fy) ** 2
            f2 = np.minimum(f2, np.maximum(f1, d))
            f1 = np.minimum(f1, d)
    return np.sqrt(f2) - np.sqrt(f1)


def _network(rng: Rng, size: int, x: np.ndarray, y: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Reticular pigment network: walls of warped Voronoi cells, patchy, fading to the rim."""
    cell = rng.uniform(0.024, 0.045)
    warp = rng.uniform(0.2, 0.4)
    gx = x / cell + warp * _fractal(rng, size, 12, 2)
    gy = y / cell + warp * _fractal(rng, size, 12, 2)
    walls = _cell_walls(rng, gx, gy, int(1.0 / cell) + 8)
    width = rng.uniform(0.45, 0.7)
    lines = _smoothstep(width, 0.0, walls + 0.12 * _fractal(rng, size, 16, 2))
    patch = _smoothstep(-0.6, 0.4, _fractal(rng, size, 3, 2))
    fade = 1.0 - _smoothstep(0.45, 1.05, depth)
    crisp = float(np.clip((cell * size - 3.0) / 4.0, 0.0, 1.0))
    return lines * patch * fade * rng.uniform(0.3, 0.6) * crisp


def _globules(rng: Rng, size: int, geo: dict) -> tuple[np.ndarray, int]:
    """Dots and globules scattered inside the main lobe, as an opacity layer."""
    n = int(rng.integers(6, 40))
    (cx, cy), rad, table = geo["lobes"][0]
    th, frac = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0.0, 0.85, n))
    sizes, fills = rng.uniform(0.003, 0.011, n), rng.integers(150, 256, n)
    rho = rad * frac * table[_angle_index(th, len(table))]
    c, s, e = np.cos(geo["rot"]), np.sin(geo["rot"]), np.sqrt(geo["stretch"])
    u, v = rho * np.cos(th) * e, rho * np.sin(th) / e
    px, py = cx + u * c - v * s, cy + u * s + v * c

    def draw(d: ImageDraw.ImageDraw, sc: float) -> None:
        for a, b, r, f in zip(px, py, sizes, fills):
            d.ellipse([sc * (a - r), sc * (b - r), sc * (a + r), sc * (b + r)], fill=int(f))
    return _supersampled(size, draw), n


def _hairs(rng: Rng, size: int) -> tuple[np.ndarray, int]:
    """0-15 dark curved hairs (quadratic Beziers) sharing a loose flow direction."""
    n = int(rng.choice(16, p=_HAIR_P))
    flow = rng.uniform(0, np.pi)
    specs = []
    for _ in range(n):
        ang = flow + rng.normal(0, 0.5)
        length = rng.uniform(0.2, 1.1)
        mid = rng.uniform(0.0, 1.0, 2)
        dirv = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        bend = rng.normal(0, 0.25) * length * np.array([-np.sin(ang), np.cos(ang)])
        width, fill = rng.uniform(0.8, 2.6) / 256, int(rng.integers(170, 256))
        specs.append((mid - dirv, mid + bend, mid + dirv, width, fill))
    ts = np.linspace(0, 1, 24)[:, None]

    def draw(d: ImageDraw.ImageDraw, sc: float) -> None:
        for p0, p1, p2, w, f in specs:
            pts = ((1 - ts) ** 2 * p0 + 2 * (1 - ts) * ts * p1 + ts ** 2 * p2) * sc
            d.line([tuple(p) for p in pts], fill=f, width=max(1, int(round(w * sc))), joint="curve")
    return _supersampled(size, draw), n


def _bubbles(rng: Rng, size: int) -> tuple[np.ndarray | None, int]:
    """Gel air bubbles (bright rim, faint fill) and specular glints, as a brightening layer."""
    n = int(rng.integers(1, 7)) if rng.random() < 0.3 else 0
    specs = [(rng.uniform(0, 1, 2), rng.uniform(0.008, 0.05), rng.uniform(0.8, 1.25))
             for _ in range(n)]

    def draw(d: ImageDraw.ImageDraw, sc: float) -> None:
        for (a, b), r, e in specs:
            box = [sc * (a - r * e), sc * (b - r / e), sc * (a + r * e), sc * (b + r / e)]
            d.ellipse(box, fill=40, outline=200, width=max(1, int(sc * 0.003)))
            g = 0.25 * r
            d.ellipse([sc * (a - r * 0.5 - g), sc * (b - r * 0.5 - g), sc * (a - r * 0.5 + g),
                       sc * (b - r * 0.5 + g)], fill=230)
    return (_supersampled(size, draw) if n else None), n


def _illumination(rng: Rng, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth multiplicative light: a linear gradient and an off-centre radial fall-off."""
    g = rng.normal(0, 0.12, 2)
    c = 0.5 + rng.normal(0, 0.15, 2)
    fall = rng.uniform(0.1, 0.6)
    light = 1.0 + g[0] * (x - 0.5) + g[1] * (y - 0.5) - fall * ((x - c[0]) ** 2 + (y - c[1]) ** 2)
    return np.clip(light, 0.35, 1.2)


def render_sample(size: int, seed: int, index: int) -> SynthSample:
    """Image `index` of the set made with `seed`.

    The same (size, seed, index) always gives the same bytes; image i does not
    depend on how many images are made.  Raises ValueError for a size outside
    32..4096.
    """
    if not isinstance(size, (int, np.integer)) or not _MIN_SIZE <= size <= _MAX_SIZE:
        raise ValueError(f"size must be an integer from {_MIN_SIZE} to {_MAX_SIZE} pixels, "
                         f"got {size!r}")
    size = int(size)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = c[None, :], c[:, None]

    for _ in range(100):  # redraw the geometry until some lesion and some skin are visible
        geo = _lobe_geometry(rng)
        alpha, depth = _lesion_field(geo, _fractal(rng, size, 5, 4, 0.6), x, y)
        vis = _vignette(rng, x, y)
        mask = alpha >= 0.5 if vis is None else (alpha >= 0.5) & (vis >= 0.5)
        seen = mask.size if vis is None else int((vis >= 0.5).sum())
        if 0.004 * seen < mask.sum() < 0.92 * seen and mask.sum() >= 4:
            break
    else:  # pragma: no cover - needs ~100 unlucky draws in a row
        raise RuntimeError(f"could not place a visible lesion for seed={seed} index={index}")

    skin, tone = _skin(rng, size)
    skin_mean = np.array(tone, np.float32)
    names, probs = zip(*_BASE_PIGMENTS)
    base = str(rng.choice(names, p=probs))
    has_net = bool(rng.random() < (0.7 if base.endswith("brown") else 0.25))
    net = _network(rng, size, x, y, depth) if has_net else None
    col, colours = _lesion_colour(rng, size, base, skin_mean, depth, net)
    n_glob = 0
    if rng.random() < 0.35:
        glob, n_glob = _globules(rng, size, geo)
        col += glob[..., None] * (_pigment("dark_brown", skin_mean) * 0.7 - col)
    contrast = float(rng.uniform(0.75, 1.0) if rng.random() < 0.85 else rng.uniform(0.3, 0.75))
    img = skin + (alpha * contrast)[..., None] * (col - skin)

    hair, n_hairs = _hairs(rng, size)
    hair_col = np.array([30.0, 22, 18]) + rng.uniform(0, 40) * np.array([1.0, 0.7, 0.5])
    img += (hair * rng.uniform(0.8, 0.95))[..., None] * (hair_col.astype(np.float32) - img)
    img *= _illumination(rng, x, y)[..., None]
    bub, n_bub = _bubbles(rng, size)
    if bub is not None:
        img += bub[..., None] * (np.float32(250.0) - img)
    if vis is not None:
        img = img * vis[..., None] + (1.0 - vis[..., None]) * np.float32(rng.uniform(4, 18))

    blur = float(rng.uniform(0.2, 0.9) if rng.random() < 0.5 else 0.0)
    sigma = float(rng.uniform(0.8, 3.5))
    out = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    if blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(blur * size / 256))
    grain = rng.standard_normal((size, size, 3), dtype=np.float32)
    noisy = np.asarray(out, np.float32) + sigma * grain
    image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)

    info = {
        "generator_version": GENERATOR_VERSION, "skin_tone": tone,
        "lesion_area": float(mask.mean()), "contrast": round(contrast, 4), "hairs": n_hairs,
        "vignette": vis is not None,
        "touches_border": bool(mask[[0, -1]].any() or mask[:, [0, -1]].any()),
        "colours": colours, "network": has_net, "globules": n_glob, "lobes": len(geo["lobes"]),
        "bubbles": n_bub, "edge_softness": round(geo["edge"], 4), "blur": round(blur, 4),
    }
    return SynthSample(image=image, mask=mask, info=info)
