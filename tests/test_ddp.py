"""`torchrun --nproc_per_node=2` with the gloo backend on the CPU: the multi-GPU path, for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch

from layouts import make_isic2018
from skinedge.models.checkpoint import load_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_seg_under_torchrun_with_two_cpu_processes(tmp_path):
    make_isic2018(tmp_path / "isic", counts=(8, 2, 2))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "skinedge", "train", "seg", "--data",
           f"isic2018:{tmp_path / 'isic'}", "--out", str(out), "--encoder", "resnet18", "--size", "64",
           "--batch", "2", "--epochs", "2", "--device", "cpu", "--bn-batches", "1"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # torchrun's log folder goes with the test's, not into /tmp
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("seg: 4 steps") == 1  # rank 0 reports; each rank took 2 steps an epoch
    payload = load_checkpoint(out / "seg-last.pt", "seg")
    assert payload["progress"]["step"] == 4 and payload["progress"]["epoch"] == 2
    assert all(not k.startswith("module.") for k in payload["state"]["model"])
    assert all(torch.isfinite(v).all() for v in payload["state"]["model"].values() if v.is_floating_point())
