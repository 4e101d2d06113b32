"""Write generated dermoscopy data to disk in the ``folder:`` layout.

``OUT/images/synth_00000.png``, ``OUT/masks/synth_00000.png`` (0/255) and
``OUT/manifest.json`` (generator, version, seed, size, per-item facts and the
sha256 of every file). No time stamps anywhere: the same arguments give
byte-identical files, which is what makes the generated set citable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import skinedge
from skinedge.atomic import write_bytes_atomic, write_json_atomic
from skinedge.data.folder import GENERATOR, MANIFEST
from skinedge.data.imageio import encode_png
from skinedge.data.synth import GENERATOR_VERSION, render_sample
from skinedge.errors import DataError

MAX_COUNT = 1_000_000


def synth_id(index: int) -> str:
    return f"synth_{index:05d}"


def write_synthetic(out: Path, count: int, size: int, seed: int,
                    progress: Callable[[int], None] | None = None) -> dict:
    """Generate ``count`` images of ``size``² with ``seed`` into ``out``.

    Refuses to write into a non-empty folder that is not an earlier synth
    output, so nothing of the user's is overwritten. Files of an earlier synth
    run beyond ``count`` are removed so the folder matches its manifest.

    Returns:
        The manifest written to ``out/manifest.json``.
    """
    if not 1 <= count <= MAX_COUNT:
        raise DataError(f"--count must be between 1 and {MAX_COUNT}, got {count}")
    if not 32 <= size <= 4096:
        raise DataError(f"--size must be between 32 and 4096 pixels, got {size}")
    if out.exists() and not out.is_dir():
        raise DataError(f"output path exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise DataError(f"output folder {out} is not empty and was not made by "
                        "`skinedge data synth`: choose an empty or new folder")
    items = []
    for index in range(count):
        sample = render_sample(size, seed, index)
        image_png = encode_png(sample.image)
        mask_png = encode_png(sample.mask.astype("uint8") * 255)
        item_id = synth_id(index)
        write_bytes_atomic(out / "images" / f"{item_id}.png", image_png)
        write_bytes_atomic(out / "masks" / f"{item_id}.png", mask_png)
        items.append({
            "id": item_id,
            "image_sha256": hashlib.sha256(image_png).hexdigest(),
            "mask_sha256": hashlib.sha256(mask_png).hexdigest(),
            "info": sample.info,
        })
        if progress:
            progress(index + 1)
    keep = {f"{item['id']}.png" for item in items}
    for sub in ("images", "masks"):
        for stale in (out / sub).glob("synth_*.png"):
            if stale.name not in keep:
                stale.unlink()
    manifest = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "skinedge_version": skinedge.__version__,
        "seed": seed,
        "size": size,
        "count": count,
        "note": "procedurally generated dermoscopy-like images, not patient data",
        "items": items,
    }
    write_json_atomic(out / MANIFEST, manifest)
    return manifest

