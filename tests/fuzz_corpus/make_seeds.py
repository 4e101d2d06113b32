"""Write the fuzzers' seed corpus: one small valid file per input kind (generated, no patient data).

Run from the repository root: ``python tests/fuzz_corpus/make_seeds.py``. The files are committed; this script
says how they were made and remakes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def picture(h: int = 20, w: int = 24) -> np.ndarray:
    """A brown blob on skin tone: enough structure that every codec has real work to do."""
    yy, xx = np.mgrid[:h, :w]
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (214, 170, 150)
    blob = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2
    img[blob] = (110, 70, 50)
    img[..., 0] += (xx * 2).astype(np.uint8)
    return img


def images() -> None:
    im = Image.fromarray(picture())
    im.save(HERE / "seed.png")
    im.save(HERE / "seed.jpg", quality=85)
    im.save(HERE / "seed.bmp")
    im.save(HERE / "seed.tif", compression="tiff_deflate")


def dicom() -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "XC", "Fuzz^Seed", "SEED-1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"
    pixels = picture(16, 16)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(HERE / "seed.dcm", enforce_file_format=True)


def onnx_and_ir(out: Path) -> Path:
    """A 3→3 convolution with dynamic spatial size, as ONNX and as OpenVINO IR (the shape of the SR input), in
    ``out``: made by the fuzz tests when they run, never committed (model files stay out of the repository)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["lr", "w"], ["sr"], pads=[1, 1, 1, 1])], "seed",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 3, "h", "w"])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, out / "seed.onnx")
    try:
        import openvino as ov
    except ImportError:  # the IR fuzz test skips without OpenVINO
        return out
    ov.save_model(ov.convert_model(str(out / "seed.onnx")), out / "seed.xml", compress_to_fp16=False)
    return out


def provenance() -> None:
    """A record of the schema ``skinedge.runtime.clinical.provenance`` writes (values made up, shapes real)."""
    sha = "0" * 64
    record = {
        "schema": "skinedge-provenance", "schema_version": 1,
        "notice": "AI-enhanced image (skinedge): not for diagnosis without the original",
        "software": {"name": "skinedge", "version": "0.0.0", "python": "3.11.0", "runtimes": {"onnxruntime": "1"}},
        "models": {"dir": "models", "models_json_sha256": sha, "networks": {
            net: {"variant": "fp32", "backend": "onnxruntime", "precision": "fp32", "files": {f"{net}.onnx": sha}}
            for net in ("seg", "sr")}},
        "settings": {"mode": "roi", "scale": 4, "sr_budget_lr_px": None},
        "image": {"found": True, "lesion_area": 0.2, "sr_input_scale": 1.0, "roi": [1, 2, 30, 40],
                  "consistency_residual": 0.5},
    }
    (HERE / "seed.provenance.json").write_text(json.dumps(record, indent=1) + "\n")


def uris() -> None:
    """One of every ``--source`` form the live loop takes."""
    (HERE / "seed.uris.txt").write_text("\n".join([
        "0", "camera://1", "/dev/video2", "v4l2:///dev/video0", "csi://0", "rtsp://10.0.0.5:8554/derm",
        "rtsps://cam.local/live", "http://127.0.0.1:8080/feed.mjpg", "https://user:pw@cam/stream?x=1",
        "clip.mp4", "file://clip.avi", "frames/", "frames/*.png", "~/captures/**/*.jpg", "./a b/c.tif"]) + "\n")


if __name__ == "__main__":
    uris()
    images()
    dicom()
    provenance()
    print("\n".join(sorted(p.name for p in HERE.iterdir() if p.name.startswith("seed"))))
