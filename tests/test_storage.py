"""A recording that never fills the disk: ``--record-keep`` through a real run, a full disk on a tmpfs made by the
test itself (in a private mount namespace: ``unshare -rm``), and the keep policy's parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinedge.data.video import write_moving_lesion_clip
from skinedge.errors import SkinedgeError
from skinedge.runtime.live.command import run_command
from skinedge.runtime.pipeline.host import FrameResult
from skinedge.runtime.sinks.recorder import Recorder, read_frames
from skinedge.runtime.sinks.storage import Keep, parse_keep

DISK_FULL = Path(__file__).parent / "storage" / "disk_full.py"
MB = 10**6


@pytest.mark.parametrize("text, keep", [
    ("50MB", Keep(max_bytes=50 * MB)), ("1.5 GiB", Keep(max_bytes=int(1.5 * 2**30))), ("90s", Keep(max_seconds=90)),
    ("30min", Keep(max_seconds=1800)), ("12h", Keep(max_seconds=43200)), ("7d", Keep(max_seconds=7 * 86400))])
def test_record_keep_reads_sizes_and_durations(text, keep):
    assert parse_keep(text) == keep


@pytest.mark.parametrize("text", ["", "50", "0MB", "-1GB", "12 parsecs", "MB", "1e3MB"])
def test_record_keep_refuses_what_it_cannot_read_in_one_line(text):
    with pytest.raises(SkinedgeError, match="--record-keep") as err:
        parse_keep(text)
    assert "\n" not in str(err.value)


def test_keep_drops_the_oldest_until_the_rest_fits_or_by_age():
    kept = [{"segment": i, "bytes": 10, "start": 100.0 + 10 * i, "seconds": 10.0} for i in range(5)]
    assert [e["segment"] for e in Keep(max_bytes=25).over(kept, 0)] == [0, 1, 2]
    assert Keep(max_bytes=50).over(kept, 0) == []
    assert [e["segment"] for e in Keep(max_seconds=25).over(kept, 150.0)] == [0, 1]  # ended at 110, 120 < 125


def _result(image: np.ndarray) -> FrameResult:
    return FrameResult(image=cv2.resize(image, None, fx=2, fy=2), mask=np.ones(image.shape[:2], np.uint8),
                       found=True, roi=(0, 0, image.shape[1], image.shape[0]), lesion_area=0.1)


def test_keep_by_duration_deletes_every_file_of_old_segments_and_names_only_the_rest(tmp_path):
    lines: list[str] = []
    rec = Recorder(tmp_path / "rec", segment_s=0.2, keep=Keep(max_seconds=0.5), log=lines.append,
                   provenance={"models": "test"})
    rng = np.random.default_rng(1)
    for i in range(80):  # 2 s of frames at ~40 fps, on the real clock
        rec.write(rng.integers(0, 255, (48, 64, 3), np.uint8), _result(np.zeros((48, 64, 3), np.uint8)), i)
        time.sleep(0.025)
    rec.close()
    index = [json.loads(line) for line in (tmp_path / "rec" / "segments.jsonl").read_text().splitlines()]
    assert len(index) == len(rec.kept) and 2 <= len(index) <= 5, index
    names = {e[k] for e in index for k in ("raw", "enhanced", "frames_log", "provenance")} | {"segments.jsonl"}
    assert {p.name for p in (tmp_path / "rec").iterdir()} == names  # nothing of a removed segment is left
    assert any("removed the oldest segment(s) 00000" in line for line in lines), lines
    assert read_frames(tmp_path / "rec")[0]["index"] == index[0]["first_index"]


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory) -> Path:
    """120 frames of 640×480 noise: ~1 MB a frame recorded (raw + enhanced), so 50 MB is passed quickly."""
    path = tmp_path_factory.mktemp("keep") / "noise.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    rng = np.random.default_rng(3)
    for _ in range(120):
        writer.write(rng.integers(0, 255, (480, 640, 3), np.uint8))
    writer.release()
    return path


@pytest.mark.slow
def test_record_keep_50mb_holds_the_folder_to_50mb_plus_one_segment_through_a_run(exported, noisy_clip, tmp_path):
    _, _, models = exported
    rec, sizes, lines, done = tmp_path / "rec", [], [], threading.Event()

    def watch() -> None:  # the folder's size, 20 times a second, all through the run
        while not done.wait(0.05):
            sizes.append(sum(p.stat().st_size for p in rec.glob("*") if p.exists()) if rec.exists() else 0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = run_command(None, str(noisy_clip), models, "onnxruntime", "fp32", record=rec, no_display=True,
                              log=lines.append, segment_s=0.5, record_keep="50MB")
    finally:
        done.set()
        watcher.join()
    index = [json.loads(line) for line in (rec / "segments.jsonl").read_text().splitlines()]
    largest = max(e["bytes"] for e in index)
    assert summary["frames"] == 120
    assert sum(e["bytes"] for e in index) <= 50 * MB
    assert max(sizes) <= 50 * MB + 2 * largest, (max(sizes), largest)  # + the open segment (and its JPEG spread)
    assert max(sizes) > 40 * MB  # it did reach the limit: the test tested something
    assert any("removed the oldest segment(s)" in line and "--record-keep 50.0 MB" in line for line in lines)
    assert index[0]["segment"] > 0  # the first segments are gone


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.streaming
@pytest.mark.skipif(not (shutil.which("ffprobe") and shutil.which("ffmpeg")), reason="needs ffmpeg and ffprobe")
@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` with tmpfs mounts (user namespaces)")
def test_a_full_disk_pauses_the_recording_the_view_goes_on_and_recording_resumes(exported, tmp_path):
    _, _, models = exported
    clip = tmp_path / "clip.avi"
    write_moving_lesion_clip(clip, seconds=60, fps=15, width=320, height=240, seed=4)
    run = subprocess.run(["unshare", "-rm", sys.executable, str(DISK_FULL), str(models), str(clip),
                          str(tmp_path / "work")], capture_output=True, text=True, timeout=240,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    log = out["log"]
    assert out["states"][:3] == ["recording", "recording paused: disk full", "recording"], out["states"]
    assert out["state_while_paused"] == "recording paused: disk full"
    assert out["frames_while_paused"] >= 20, out  # 3 s at 15 fps: the live view kept counting
    assert "recording paused: disk full" in log and "recording resumed" in log, log
    assert "Traceback" not in log
    segments = out["segments"]
    assert len(segments) >= out["closed_before_freeing"] + 2
    for seg in segments:  # closed segments are whole: they decode without an error and last their wall time
        for stream in ("raw", "enhanced"):
            assert seg[f"{stream}_errors"] == "", seg
            assert abs(seg[f"{stream}_duration"] - seg["seconds"]) <= 0.01 * seg["seconds"] + 0.002, seg
    assert sorted(out["files"]) == sorted({s[k] for s in segments for k in ("raw", "enhanced", "frames_log")}
                                          | {"segments.jsonl"} | {s["provenance"] for s in segments})
