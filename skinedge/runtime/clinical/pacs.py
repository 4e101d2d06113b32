"""Send DICOM objects to a PACS (``enhance --dicom --pacs HOST:PORT[/AET]``): C-STORE with pynetdicom.

The files are written first and stay where they are whatever happens: a send that fails (no PACS listening,
association rejected, a store refused) is reported object by object and the run exits non-zero, naming the
folder that still holds them — nothing is lost, and sending again later is ``storescu`` or a second run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skinedge.errors import SkinedgeError

EXTRA = "pip install 'skinedge[dicom]'"
CALLING_AET = "SKINEDGE"
DEFAULT_AET = "ANY-SCP"
TIMEOUT_S = 10


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    aet: str


def parse_pacs(text: str) -> Peer:
    """``HOST:PORT`` or ``HOST:PORT/AET`` (AE title ≤ 16 characters, no backslash)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})(?:/([^\\\s]{1,16}))?\s*", str(text))
    if not m or int(m.group(2)) > 65535 or int(m.group(2)) == 0:
        raise SkinedgeError(f"--pacs expects HOST:PORT or HOST:PORT/AET (e.g. pacs.local:4242/ORTHANC), got {text!r}")
    return Peer(m.group(1).strip("[]"), int(m.group(2)), m.group(3) or DEFAULT_AET)


def send(files: list[Path], peer: Peer, log: Callable[[str], None] = print) -> list[tuple[Path, str]]:
    """C-STORE every file over one association; returns the (file, reason) pairs that were not stored."""
    try:
        from pydicom import dcmread
        from pynetdicom import AE, StoragePresentationContexts  # noqa: F401
    except ImportError:
        raise SkinedgeError(f"--pacs needs pynetdicom: {EXTRA}") from None
    if not files:
        return []
    datasets = [dcmread(f) for f in files]
    ae = AE(ae_title=CALLING_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(uid, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    where = f"{peer.host}:{peer.port}/{peer.aet}"
    try:
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    except Exception as exc:  # noqa: BLE001 - DNS failure and the like
        return [(f, f"cannot reach {where}: {exc}") for f in files]
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "no PACS answered (refused or timed out)"
        return [(f, f"{where}: {why}") for f in files]
    failed = []
    try:
        for file, ds in zip(files, datasets):
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:
                failed.append((file, f"{where}: no answer to C-STORE (connection lost or timed out)"))
            elif code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or stored with warnings
                failed.append((file, f"{where}: C-STORE refused (status 0x{code:04X})"))
            else:
                log(f"sent {file.name} → {where}")
    finally:
        assoc.release()
    return failed
