"""Checkpoints: one self-describing file per network, written atomically.

A checkpoint holds the architecture arguments, the training config, the data
spec and split-file sha256, the metrics, the progress (for ``--resume``) and
the state dicts, and nothing that needs unpickling code: it is read with
``torch.load(weights_only=True)``. Saving goes to a temp file and is renamed
over the old one, so Ctrl-C or a full disk never leaves a corrupt checkpoint.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import torch

import skinedge
from skinedge.atomic import write_bytes_atomic
from skinedge.errors import SkinedgeError

FORMAT = "skinedge-checkpoint"
FORMAT_VERSION = 1
KINDS = {"seg": "segmenter (U-Net)", "sr": "SR generator (SRGAN)"}


class CheckpointError(SkinedgeError):
    """A checkpoint that is missing, unreadable, or of the wrong network."""


def save_checkpoint(path: Path, kind: str, arch: dict, state: dict[str, Any], **sections: Any) -> None:
    """Write a checkpoint atomically.

    Args:
        kind: ``seg`` or ``sr``.
        arch: keyword arguments that rebuild the network (``build_segmenter``/``Generator``).
        state: state dicts (``model``, ``optimizer``, ...).
        sections: more plain data: ``config``, ``data``, ``progress``, ``metrics``, ``io``.
    Raises:
        CheckpointError: the disk is full or not writable (the previous file is intact).
    """
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "skinedge_version": skinedge.__version__,
               "kind": kind, "arch": arch, "state": state, **sections}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        write_bytes_atomic(path, buffer.getvalue())
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise CheckpointError(f"cannot save checkpoint {path}: {reason}; the previous checkpoint "
                              "there is intact") from None


def load_checkpoint(path: Path, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely and check it is the network expected.

    Raises:
        CheckpointError: missing file, not a skinedge checkpoint, or a checkpoint
            of the other network; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of any kind mean "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable skinedge checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a skinedge checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer skinedge ({payload.get('skinedge_version')}); "
                              "upgrade skinedge")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {KINDS.get(payload.get('kind'), payload.get('kind'))}, "
                              f"not a {KINDS[kind]}")
    return payload


def load_state(module: torch.nn.Module, state: dict, path: Path, what: str = "model") -> None:
    """``load_state_dict`` with an error that explains a shape/key mismatch."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise CheckpointError(f"{path}: {what} weights do not fit this network ({first[:200]}); "
                              "was it written by a different skinedge version or with other "
                              "architecture options?") from None
