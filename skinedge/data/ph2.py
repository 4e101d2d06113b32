"""PH2 (Hospital Pedro Hispano), as distributed.

``PH2Dataset/PH2 Dataset images/IMD003/IMD003_Dermoscopic_Image/IMD003.bmp`` with
the mask at ``IMD003/IMD003_lesion/IMD003_lesion.bmp``; ``PH2_dataset.txt``
(fields separated by ``||``) gives the clinical diagnosis. The spec may point
at ``PH2Dataset``, its parent, or the ``PH2 Dataset images`` folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from skinedge.data.dataset import Dataset, ItemRef, Problem, require_dir, sorted_refs
from skinedge.errors import DataError

CASE_RE = re.compile(r"^IMD\d{3}$")
DIAGNOSES = {"0": "common_nevus", "1": "atypical_nevus", "2": "melanoma"}


def _images_dir(root: Path) -> Path:
    for candidate in (root / "PH2 Dataset images", root / "PH2Dataset" / "PH2 Dataset images", root):
        if candidate.is_dir() and any(CASE_RE.match(p.name) for p in candidate.iterdir()):
            return candidate
    raise DataError(f"no PH2 case folders (IMD003/, ...) under {root}: expected "
                    "PH2Dataset/PH2 Dataset images/IMDxxx/")


def _diagnoses(root: Path, images_dir: Path) -> dict[str, str]:
    """Case id → diagnosis from PH2_dataset.txt; empty when the file is absent."""
    for txt in (images_dir.parent / "PH2_dataset.txt", root / "PH2_dataset.txt"):
        if txt.is_file():
            break
    else:
        return {}
    column = None
    result: dict[str, str] = {}
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.split("||")]
        if column is None and "Clinical Diagnosis" in fields:
            column = fields.index("Clinical Diagnosis")
        elif column is not None and len(fields) > column and CASE_RE.match(fields[1] if len(fields) > 1 else ""):
            result[fields[1]] = DIAGNOSES.get(fields[column], fields[column])
    return result


def read_ph2(root: Path, spec: str) -> Dataset:
    """Scan a PH2 tree; a case without its image or lesion mask is an error."""
    require_dir(root, "PH2 dataset")
    images_dir = _images_dir(root)
    diagnoses = _diagnoses(root, images_dir)
    problems: list[Problem] = []
    refs: list[ItemRef] = []
    for case in sorted(images_dir.iterdir()):
        if not CASE_RE.match(case.name):
            if not case.name.startswith("."):
                problems.append(Problem(case.name, "not a PH2 case folder (IMDxxx): skipped",
                                        "warning"))
            continue
        cid = case.name
        image = case / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp"
        mask = case / f"{cid}_lesion" / f"{cid}_lesion.bmp"
        if not image.is_file():
            problems.append(Problem(cid, f"missing image {image.relative_to(images_dir)}"))
            continue
        if not mask.is_file():
            problems.append(Problem(cid, f"missing mask {mask.relative_to(images_dir)}"))
        meta = {"diagnosis": diagnoses[cid]} if cid in diagnoses else {}
        refs.append(ItemRef(cid, image, mask if mask.is_file() else None, group=cid, meta=meta))
    return Dataset(spec, "ph2", root, sorted_refs(refs, problems), True, problems)
