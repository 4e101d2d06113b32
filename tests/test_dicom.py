"""DICOM in: the kinds clinics store dermoscopy as, and the broken ones, through ``enhance`` and the readers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom", reason="the dicom extra is not installed")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,  # noqa: E402
                         MultiFrameTrueColorSecondaryCaptureImageStorage, VLPhotographicImageStorage, generate_uid)

from skinedge.data.dicom import is_dicom, read_dicom  # noqa: E402
from skinedge.data.imageio import read_rgb  # noqa: E402
from skinedge.errors import DataError, SkinedgeError  # noqa: E402
from skinedge.runtime.enhance import enhance_command  # noqa: E402

H, W = 96, 128


def picture(seed: int = 0) -> np.ndarray:
    """A smooth RGB test picture with a dark disc (a lesion for the segmenter to find or not)."""
    yy, xx = np.mgrid[:H, :W]
    img = np.dstack([150 + 60 * np.sin(xx / 17 + seed), 110 + 40 * np.cos(yy / 13), 90 + 30 * np.sin((xx + yy) / 23)])
    img[(yy - 48) ** 2 + (xx - 64 - seed * 5) ** 2 < 400] *= 0.45
    return img.clip(0, 255).astype(np.uint8)


def dataset(frames: list[np.ndarray], photometric: str = "RGB", syntax=ExplicitVRLittleEndian,
            pixel_data: bytes | None = None, bits: int = 8) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = (MultiFrameTrueColorSecondaryCaptureImageStorage if len(frames) > 1
                                    else VLPhotographicImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.StudyInstanceUID, ds.SeriesInstanceUID = "P1", "Test^Patient", generate_uid(), \
        generate_uid()
    ds.Modality = "XC"
    ds.Rows, ds.Columns = frames[0].shape[:2]
    ds.SamplesPerPixel = 1 if photometric.startswith("MONO") else 3
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = pixel_data if pixel_data is not None else np.stack(frames).tobytes()
    return ds


def jpeg_422(img: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=95, subsampling=1)  # 4:2:2, YCbCr
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dicoms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dicom")
    pics = [picture(i) for i in range(3)]
    files = {
        "rgb.dcm": dataset([pics[0]]),
        "ybr422-jpeg.dcm": dataset([pics[1]], "YBR_FULL_422", JPEGBaseline8Bit,
                                   encapsulate([jpeg_422(pics[1])])),
        "multi.dcm": dataset(pics),
        "grey.dcm": dataset([pics[2][:, :, 1]], "MONOCHROME2"),
    }
    for name, ds in files.items():
        ds.save_as(folder / name, enforce_file_format=True)
    (folder / "noext").write_bytes((folder / "rgb.dcm").read_bytes())
    return folder, pics


def test_each_kind_reads_as_rgb_frames(dicoms):
    folder, pics = dicoms
    assert np.array_equal(read_dicom(folder / "rgb.dcm").frames[0], pics[0])
    jpeg = read_dicom(folder / "ybr422-jpeg.dcm").frames[0]  # YCbCr 4:2:2 JPEG → RGB
    assert jpeg.shape == (H, W, 3) and np.abs(jpeg.astype(int) - pics[1]).mean() < 4
    multi = read_dicom(folder / "multi.dcm")
    assert len(multi.frames) == 3 and all(np.array_equal(f, p) for f, p in zip(multi.frames, pics))
    assert "3 frames" in multi.notes[0] and "PixelData" not in multi.dataset
    grey = read_dicom(folder / "grey.dcm").frames[0]
    assert np.array_equal(grey[..., 0], pics[2][:, :, 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    assert is_dicom(folder / "noext") and not is_dicom(__file__)
    rgb, notes = read_rgb(folder / "noext")  # the dataset readers take DICOM through the same reader
    assert np.array_equal(rgb, pics[0])


def broken_files(folder, pics) -> dict[str, str]:
    """name → the reason its one line must give."""
    dataset([pics[0]]).save_as(folder / "whole.tmp", enforce_file_format=True)
    whole = (folder / "whole.tmp").read_bytes()
    (folder / "whole.tmp").unlink()
    (folder / "truncated.dcm").write_bytes(whole[:len(whole) // 3])
    no_pixels = dataset([pics[0]])
    del no_pixels.PixelData
    no_pixels.save_as(folder / "no-pixels.dcm", enforce_file_format=True)
    dataset([pics[0]], "YBR_FULL", JPEG2000Lossless, encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])).save_as(
        folder / "j2k.dcm", enforce_file_format=True)
    dataset([pics[0][:, :, 0].astype(np.uint16) * 256], "MONOCHROME2", bits=16).save_as(
        folder / "sixteen.dcm", enforce_file_format=True)
    (folder / "text.dcm").write_text("not dicom at all")
    return {"truncated.dcm": "cannot decode|not a readable DICOM", "no-pixels.dcm": "without pixel data",
            "j2k.dcm": "cannot decode transfer syntax JPEG 2000", "sixteen.dcm": "16-bit DICOM pixels",
            "text.dcm": "not a readable DICOM file"}


def test_broken_dicom_is_one_line_each(dicoms, tmp_path):
    folder, pics = dicoms
    for name, reason in broken_files(tmp_path, pics).items():
        with pytest.raises(DataError, match=reason) as info:
            read_dicom(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)


def test_enhance_takes_every_kind_frame_by_frame_and_reports_broken_ones_without_partial_outputs(
        dicoms, exported, tmp_path):
    folder, pics = dicoms
    _, _, models = exported
    bad = tmp_path / "bad"
    bad.mkdir()
    reasons = broken_files(bad, pics)
    out, lines = tmp_path / "out", []
    with pytest.raises(SkinedgeError, match=f"{len(reasons)} input"):
        enhance_command([str(folder / n) for n in ("rgb.dcm", "ybr422-jpeg.dcm", "multi.dcm", "grey.dcm")]
                        + [str(bad)], models, out, backend="onnxruntime", precision="fp32", log=lines.append)
    made = sorted(p.name for p in out.iterdir())
    for stem in ("rgb", "ybr422-jpeg", "grey", "multi.f0001", "multi.f0002", "multi.f0003"):
        assert {f"{stem}.enhanced.png", f"{stem}.mask.png", f"{stem}.panel.png"} <= set(made), (stem, made)
    assert not any(p.startswith(tuple(n.removesuffix(".dcm") + "." for n in reasons)) for p in made), made
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == len(reasons)
    for name, reason in reasons.items():
        assert any(name in line and __import__("re").search(reason, line) for line in fails), (name, fails)
    assert any(line.startswith("ok   multi.dcm frame 0002") for line in lines), lines


# ------------------------------------------------------------------------------------------------ DICOM out
def dciodvfy_errors(path) -> list[str]:
    run = __import__("subprocess").run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def dicom_out(dicoms, exported, tmp_path_factory):
    folder, _ = dicoms
    _, _, models = exported
    out = tmp_path_factory.mktemp("dicom-out")
    png = tmp_path_factory.mktemp("png") / "photo.png"
    Image.fromarray(picture(1)).save(png)
    lines = []
    enhance_command([str(folder / "rgb.dcm"), str(folder / "multi.dcm"), str(png)], models, out,
                    backend="onnxruntime", precision="fp32", log=lines.append, dicom=True)
    return folder, out, lines


def test_the_enhanced_object_is_derived_from_its_source_and_names_the_models(dicom_out):
    folder, out, _ = dicom_out
    source = pydicom.dcmread(folder / "rgb.dcm")
    enhanced = pydicom.dcmread(out / "rgb.enhanced.dcm")
    assert list(enhanced.ImageType)[:2] == ["DERIVED", "SECONDARY"] and enhanced.BurnedInAnnotation == "NO"
    assert "AI-enhanced" in enhanced.DerivationDescription and "sha256" in enhanced.DerivationDescription
    assert "AI-enhanced" in enhanced.ImageComments and "not a photograph" in enhanced.SeriesDescription
    assert (enhanced.PatientID, enhanced.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert enhanced.SeriesInstanceUID != source.SeriesInstanceUID and enhanced.SOPInstanceUID != source.SOPInstanceUID
    ref = enhanced.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (source.SOPClassUID, source.SOPInstanceUID)
    png = np.asarray(Image.open(out / "rgb.enhanced.png"))
    assert np.array_equal(enhanced.pixel_array, png)  # the same pixels as the PNG


def test_the_mask_is_a_segmentation_by_an_identified_algorithm(dicom_out):
    folder, out, _ = dicom_out
    seg = pydicom.dcmread(out / "rgb.seg.dcm")
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert "skinedge" in algorithm.AlgorithmName and algorithm.AlgorithmVersion
    assert "sha256 seg.onnx" in algorithm.AlgorithmParameters
    source = pydicom.dcmread(folder / "rgb.dcm")
    refs = [r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence]
    assert refs == [source.SOPInstanceUID]
    mask = np.asarray(Image.open(out / "rgb.mask.png")) > 0
    assert np.array_equal(seg.pixel_array.reshape(mask.shape) > 0, mask)


def test_frames_and_png_inputs_get_their_own_objects(dicom_out):
    folder, out, _ = dicom_out
    frames = [pydicom.dcmread(out / f"multi.f{i:04d}.enhanced.dcm") for i in (1, 2, 3)]
    assert [f.SourceImageSequence[0].ReferencedFrameNumber for f in frames] == [1, 2, 3]
    assert not list(out.glob("multi.*.seg.dcm"))  # single-frame sources only
    source = pydicom.dcmread(out / "photo.source.dcm")  # a PNG became a converted source object
    assert source.PatientID == "" and "converted" in source.DerivationDescription
    assert pydicom.dcmread(out / "photo.enhanced.dcm").SourceImageSequence[0].ReferencedSOPInstanceUID == \
        source.SOPInstanceUID


@pytest.mark.skipif(not __import__("shutil").which("dciodvfy"), reason="needs dicom3tools' dciodvfy "
                    "(apt-get install dicom3tools)")
def test_dciodvfy_finds_no_errors_in_any_object(dicom_out):
    _, out, _ = dicom_out
    files = sorted(out.glob("*.dcm"))
    assert len(files) >= 6
    for file in files:
        assert dciodvfy_errors(file) == [], file.name


@pytest.mark.skipif(not __import__("shutil").which("storescp"), reason="needs dcmtk's storescp "
                    "(apt-get install dcmtk)")
def test_objects_reach_a_real_pacs_and_a_failed_send_keeps_them(dicoms, exported, tmp_path):
    import socket
    import subprocess
    import time

    folder, _ = dicoms
    _, _, models = exported
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "pacs"
    store.mkdir()
    server = subprocess.Popen(["storescp", "-aet", "SKINPACS", "-od", str(store), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        lines = []
        enhance_command([str(folder / "rgb.dcm")], models, tmp_path / "out", backend="onnxruntime",
                        precision="fp32", log=lines.append, dicom=True, pacs=f"127.0.0.1:{port}/SKINPACS")
    finally:
        server.terminate()
        server.wait(10)
    stored = {pydicom.dcmread(f).SOPInstanceUID for f in store.iterdir()}
    written = {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "out").glob("*.dcm")}
    assert len(written) == 2 and stored == written  # read back from the PACS's own storage
    assert sum(line.startswith("sent ") for line in lines) == 2
    lines = []
    with pytest.raises(SkinedgeError, match="2 DICOM object.* not stored by the PACS; they are kept in"):
        enhance_command([str(folder / "rgb.dcm")], models, tmp_path / "out2", backend="onnxruntime",
                        precision="fp32", log=lines.append, dicom=True, pacs=f"127.0.0.1:{port}")
    assert len(list((tmp_path / "out2").glob("*.dcm"))) == 2  # nothing lost
    assert sum(line.startswith("NOT SENT") for line in lines) == 2


def test_pacs_and_dicom_options_are_checked_before_anything_runs(tmp_path):
    from skinedge.runtime.clinical.pacs import parse_pacs

    assert parse_pacs("pacs.local:4242/ORTHANC").aet == "ORTHANC" and parse_pacs("10.0.0.2:104").aet == "ANY-SCP"
    for bad in ("pacs", "pacs:0", "pacs:70000", "pacs:104/THIS-TITLE-IS-TOO-LONG", "http://pacs:104"):
        with pytest.raises(SkinedgeError, match="--pacs expects HOST:PORT"):
            parse_pacs(bad)
    with pytest.raises(SkinedgeError, match="add --dicom"):
        enhance_command(["x.png"], tmp_path / "no-models", tmp_path / "out", pacs="127.0.0.1:104")


@pytest.mark.skipif(not __import__("shutil").which("Orthanc"), reason="needs the Orthanc PACS (apt-get install "
                    "orthanc)")
def test_objects_stored_in_orthanc_come_back_byte_for_byte_through_its_rest_api(dicoms, exported, tmp_path):
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    folder, _ = dicoms
    _, _, models = exported
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    http, dicom_port = ports
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({"Name": "skinedge-test", "StorageDirectory": str(tmp_path / "db"),
                                  "IndexDirectory": str(tmp_path / "db"), "HttpPort": http, "DicomPort": dicom_port,
                                  "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                                  "DicomCheckCalledAet": True, "Plugins": []}))
    server = subprocess.Popen(["Orthanc", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{http}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{api}/system", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        enhance_command([str(folder / "rgb.dcm")], models, tmp_path / "out", backend="onnxruntime",
                        precision="fp32", log=lambda s: None, dicom=True, pacs=f"127.0.0.1:{dicom_port}/ORTHANC")
        ids = json.loads(urllib.request.urlopen(f"{api}/instances", timeout=10).read())
        stored = {}
        for i in ids:
            data = urllib.request.urlopen(f"{api}/instances/{i}/file", timeout=10).read()
            ds = pydicom.dcmread(io.BytesIO(data))
            stored[ds.SOPInstanceUID] = ds
    finally:
        server.terminate()
        server.wait(20)
    local = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, (tmp_path / "out").glob("*.dcm"))}
    assert set(stored) == set(local) and len(local) == 2
    for uid, ds in local.items():
        assert stored[uid].SOPClassUID == ds.SOPClassUID and np.array_equal(stored[uid].pixel_array, ds.pixel_array)
        assert stored[uid].PatientID == ds.PatientID == "P1"


def test_masks_are_not_read_from_dicom_images(dicoms):
    from skinedge.data.imageio import read_mask

    folder, _ = dicoms
    with pytest.raises(DataError):  # an image is not a mask: no RGB frame passed off as one
        read_mask(folder / "noext")
