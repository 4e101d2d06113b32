"""Start or resume a run folder: dataset, split, and no accidental overwrite."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from skinedge.atomic import write_json_atomic
from skinedge.data import Dataset, open_dataset
from skinedge.data.splits import Split, make_split, read_split, write_split
from skinedge.errors import SkinedgeError


@dataclass
class RunConfig:
    """Options every training run has (the seg and SR configs add their own)."""

    data: str
    out: Path
    split: Path | None = None
    batch: int = 16
    epochs: int = 50
    lr: float = 1e-4
    schedule: str = "constant"
    seed: int = 0
    max_steps: int | None = None
    max_minutes: float | None = None
    device: str = "auto"
    resume: bool = False

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def prepare_run(out: Path, data_spec: str, split_file: Path | None, seed: int, resume: bool,
                prefix: str, config: dict, main: bool = True) -> tuple[Dataset, Split, dict]:
    """Open the data, settle the split, guard ``out``.

    Returns:
        (dataset, split, data section for checkpoints: spec, split file, sha256).
    Raises:
        SkinedgeError: ``out`` already holds this phase and ``--resume`` was not
            given (nothing is overwritten), or ``--resume`` with nothing to resume.
    """
    last = out / f"{prefix}-last.pt"
    if resume and not last.is_file():
        raise SkinedgeError(f"--resume: no {last.name} in {out} to resume from")
    if not resume and last.is_file():
        raise SkinedgeError(f"{out} already holds a {prefix} run ({last.name}): pass --resume to "
                            "continue it, or choose another --out")
    dataset = open_dataset(data_spec)
    split_path = split_file or out / "split.json"
    if split_file is None and not split_path.is_file():
        split = make_split(dataset, seed=seed)
        if main:
            write_split(split, split_path)
    else:
        split = read_split(split_path)
    for part in ("train", "val"):
        if not split.parts[part]:
            raise SkinedgeError(f"split {split_path} has an empty {part} part")
    dataset.subset(split.parts["train"] + split.parts["val"])  # every id must exist
    digest = hashlib.sha256(split_path.read_bytes()).hexdigest() if split_path.is_file() else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / f"{prefix}-config.json", config)
    data = {"spec": data_spec, "split_file": str(split_path), "split_sha256": digest,
            "split_strategy": split.strategy}
    return dataset, split, data
