"""DICOM out (``enhance --dicom``): the enhanced image as a derived object, the lesion mask as a Segmentation.

For each enhanced image (or frame) three kinds of object, with highdicom (extra ``dicom``):

- ``<name>.enhanced.dcm``: a Secondary Capture of the enhanced view — ImageType DERIVED\\SECONDARY, a
  DerivationDescription that says a neural network changed the lesion and names the models (variant, backend,
  sha256), SourceImageSequence pointing at the image it came from, BurnedInAnnotation NO (the pixels carry no
  text: the header does), the AI notice in ImageComments and the SeriesDescription, and the same Patient and
  Study as the source when the input was DICOM; new Series and SOP Instance UIDs.
- ``<name>.seg.dcm``: the lesion mask as a DICOM Segmentation (binary) of the source image, its segment
  identified as made by the skinedge U-Net (AlgorithmIdentificationSequence: name, version, the model's sha256).
- ``<name>.source.dcm``, only for a non-DICOM input: the input picture as a Secondary Capture (new Patient/Study,
  empty patient identity), so the two objects above have a DICOM source to reference.

Multi-frame DICOM inputs: each frame's enhanced object references its frame (ReferencedFrameNumber); the
Segmentation is written for single-frame sources only. No Segmentation either where no lesion was found.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np

from skinedge.atomic import write_bytes_atomic
from skinedge.errors import DataError, SkinedgeError, one_line
from skinedge.runtime.clinical.provenance import NOTICE

EXTRA = "pip install 'skinedge[dicom]'"
SERIES_ENHANCED, SERIES_SEG, SERIES_SOURCE = 9001, 9002, 9000
MANUFACTURER, MODEL_NAME = "skinedge", "SkinSegmentSRGAN"
# highdicom insists on an orientation for a PATIENT-coordinate image; a dermoscopy photograph has none known, so
# the attribute is emptied right after construction (Type 2: present, empty).
ANY_ORIENTATION = ("L", "F")


def _hd():
    try:
        import highdicom
    except ImportError:
        raise SkinedgeError(f"--dicom needs highdicom and pydicom: {EXTRA}") from None
    return highdicom


def write_dicom(base: Path, source: object | None, frame_rgb: np.ndarray, enhanced_rgb: np.ndarray,
                mask: np.ndarray, record: dict, frame_number: int | None = None,
                source_name: str = "") -> list[Path]:
    """Write ``base.enhanced.dcm``, ``base.seg.dcm`` (and ``base.source.dcm`` without a DICOM ``source``).

    Args:
        base: output path without suffixes (``out/name``).
        source: the input's DICOM header (:class:`~skinedge.data.dicom.DicomImage` ``.dataset``), or None.
        frame_rgb: the input frame (uint8 RGB), for a non-DICOM source's Secondary Capture.
        enhanced_rgb: the enhanced view (uint8 RGB).
        mask: the lesion mask at the frame's size (bool or 0/1).
        record: the image's provenance record (:func:`skinedge.runtime.clinical.provenance.image_record`).
        frame_number: the frame (1-based) of a multi-frame source.
    Returns:
        The files written, in the order a PACS should receive them (source first).
    """
    hd = _hd()
    from pydicom.uid import generate_uid

    if source is not None:
        _check_references(source, source_name)
    written: list[Path] = []
    try:
        if source is None:
            source = _source_sc(hd, frame_rgb, source_name)
            written.append(_save(source, base.with_name(base.name + ".source.dcm")))
        enhanced = _enhanced_sc(hd, source, enhanced_rgb, record, frame_number, generate_uid)
        written.append(_save(enhanced, base.with_name(base.name + ".enhanced.dcm")))
        if frame_number is None and record["image"]["found"]:
            seg = _segmentation(hd, source, mask, record, generate_uid)
            written.append(_save(seg, base.with_name(base.name + ".seg.dcm")))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        # highdicom copies and checks the source's header: an odd value there is the input's fault, said in one
        # line (found by tests/test_fuzz.py); the caller removes what was written
        for path in written:
            path.unlink(missing_ok=True)
        raise DataError(f"{source_name}: cannot derive DICOM objects from its header ({one_line(exc)})") from None
    return written


REFERENCES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def _check_references(source, source_name: str) -> None:
    """The derived objects join the source's study and reference its instance: without valid UIDs they cannot."""
    missing = []
    for keyword in REFERENCES:
        try:
            ok = bool(getattr(source.get(keyword), "is_valid", False))
        except Exception:  # noqa: BLE001 - a damaged element pydicom fails to parse when read
            ok = False
        if not ok:
            missing.append(keyword)
    if missing:
        raise DataError(f"{source_name}: no valid {', '.join(missing)} in its header, so derived DICOM objects "
                        "cannot reference it; enhance it without --dicom or fix its header")


def derivation(record: dict) -> str:
    """DerivationDescription (≤ 1024 characters): what changed the pixels, and the models by hash."""
    nets = record["models"]["networks"]
    parts = [f"{net} {e['variant']} on {e['backend']} sha256 " + ",".join(sha[:16] for sha in e["files"].values())
             for net, e in nets.items()]
    text = (f"{NOTICE}. skinedge {record['software']['version']}: lesion segmented, its region super-resolved x"
            f"{record['settings']['scale']} and projected onto the camera's pixels; " + "; ".join(parts) +
            f"; models.json sha256 {record['models']['models_json_sha256'][:16]}")
    return text[:1024]


# Patient and General Study attributes of Type 2 (present, possibly empty): a source that omits them gets them
# empty in the copy the derived objects are made from (the source file itself is never touched).
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _complete(source):
    ref = source.copy()
    for keyword in TYPE2:
        if keyword not in ref:
            setattr(ref, keyword, "")
    return ref


def _enhanced_sc(hd, source, enhanced_rgb: np.ndarray, record: dict, frame_number: int | None, generate_uid):
    sc = hd.sc.SCImage.from_ref_dataset(
        _complete(source), pixel_array=np.ascontiguousarray(enhanced_rgb), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=generate_uid(),
        series_number=SERIES_ENHANCED, sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=ANY_ORIENTATION, transfer_syntax_uid="1.2.840.10008.1.2.1")
    sc.PatientOrientation = ""  # a photograph of skin: no patient axes known (Type 2: present, empty)
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = derivation(record)
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = NOTICE[:10240]
    sc.SeriesDescription = "skinedge AI-enhanced (not a photograph)"
    sc.Laterality = ""
    _stamp(sc, record)
    ref = _ref(source, frame_number)
    sc.SourceImageSequence = [ref]
    return sc


def _segmentation(hd, source, mask: np.ndarray, record: dict, generate_uid):
    from pydicom.sr.codedict import codes

    seg_net = record["models"]["networks"]["seg"]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"skinedge {MODEL_NAME} U-Net (EfficientNet-B3)", version=record["software"]["version"],
        family=codes.cid7162.ArtificialIntelligence,
        parameters={"variant": seg_net["variant"], "backend": seg_net["backend"],
                    **{f"sha256 {name}": sha for name, sha in seg_net["files"].items()}})
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm)
    seg = hd.seg.Segmentation(
        source_images=[_complete(source)], pixel_array=(np.asarray(mask) > 0).astype(np.uint8)[None],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=generate_uid(), series_number=SERIES_SEG, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME,
        software_versions=record["software"]["version"], device_serial_number="none",
        content_description="skinedge lesion mask (automatic)", omit_empty_frames=False)
    seg.PatientOrientation = ""
    seg.SeriesDescription = "skinedge lesion segmentation (AI)"
    return seg


def _source_sc(hd, frame_rgb: np.ndarray, name: str):
    """A non-DICOM input as a Secondary Capture: a new Patient and Study with no identity (the file had none)."""
    from pydicom.uid import generate_uid

    now = datetime.now()
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(frame_rgb), photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", study_instance_uid=generate_uid(), series_instance_uid=generate_uid(),
        series_number=SERIES_SOURCE, sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        patient_id="", patient_name="", study_date=now.date(), study_time=now.time(),
        patient_orientation=ANY_ORIENTATION, transfer_syntax_uid="1.2.840.10008.1.2.1")
    sc.PatientOrientation = ""
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = f"converted by skinedge from the image file {name}"[:1024]
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = ""
    sc.SeriesDescription = "skinedge source image (converted, not enhanced)"
    return sc


def _ref(source, frame_number: int | None):
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if frame_number is not None:
        ref.ReferencedFrameNumber = frame_number
    return ref


def _stamp(ds, record: dict) -> None:
    now = datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SoftwareVersions = f"skinedge {record['software']['version']}"


def _save(ds, path: Path) -> Path:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    write_bytes_atomic(path, buffer.getvalue())
    return path
